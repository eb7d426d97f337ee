#include "runtime/network/host_local_ipam.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_set>

#include "base/fd.h"
#include "base/file.h"
#include "base/strings.h"

namespace runtime::net {
namespace {

constexpr const char* kLastReserved = "last_reserved";

// Exclusive flock on <dir>/lock for the lifetime of the object.
class FileLock {
 public:
  static Result<FileLock> Take(const std::string& path) {
    base::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return base::Errno("open IPAM lock " + path);
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) return base::Errno("lock IPAM " + path);
    }
    return FileLock(std::move(fd));
  }

 private:
  explicit FileLock(base::UniqueFd fd) : fd_(std::move(fd)) {}
  base::UniqueFd fd_;  // closing it drops the lock
};

Result<std::vector<std::string>> ReadDirNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return names;
    return base::Errno("open directory " + dir);
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

Result<> ValidateSandboxId(const std::string& id) {
  if (id.empty()) return base::Fail("empty sandbox id");
  if (id.find_first_of("\n/") != std::string::npos) {
    return base::Fail("invalid sandbox id \"" + id + "\"");
  }
  return {};
}

}  // namespace

HostLocalIpam::HostLocalIpam(std::string dir) : dir_(std::move(dir)) {}

std::string HostLocalIpam::RangeDir(const Ipv4Cidr& range) const {
  return dir_ + "/" + range.FileName();
}

Result<std::vector<IpAllocation>> HostLocalIpam::ListRange(const Ipv4Cidr& range) const {
  std::string rdir = RangeDir(range);
  auto names = ReadDirNames(rdir);
  if (!names) return tl::unexpected(names.error().Wrap("list IP allocations"));
  std::vector<IpAllocation> out;
  for (const auto& name : *names) {
    // Only "<ip>" files count; temp files, last_reserved etc. do not parse as addresses.
    auto ip = Ipv4::Parse(name);
    if (!ip || !range.Contains(*ip)) continue;
    auto content = base::ReadFile(rdir + "/" + name);
    if (!content) {
      if (content.error().code == ENOENT) continue;  // released meanwhile by another process
      return tl::unexpected(content.error().Wrap("read IP allocation"));
    }
    out.push_back({range, *ip, std::string(base::Trim(*content))});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
  return out;
}

Result<std::vector<IpAllocation>> HostLocalIpam::ListAll() const {
  auto names = ReadDirNames(dir_);
  if (!names) return tl::unexpected(names.error().Wrap("list IPAM ranges"));
  std::vector<IpAllocation> out;
  for (const auto& name : *names) {
    std::string text = name;
    std::replace(text.begin(), text.end(), '_', '/');
    auto range = Ipv4Cidr::Parse(text);
    if (!range) continue;  // "lock" and strays
    auto part = ListRange(*range);
    if (!part) return part;
    out.insert(out.end(), part->begin(), part->end());
  }
  return out;
}

Result<> HostLocalIpam::Free(const IpAllocation& a) const {
  std::string path = RangeDir(a.range) + "/" + a.ip.ToString();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return base::Errno("release IP " + a.ip.ToString() + " of sandbox " + a.sandbox_id +
                       " (remove " + path + ")");
  }
  return {};
}

Result<HostLocalIpam::Allocated> HostLocalIpam::Allocate(const Ipv4Cidr& range,
                                                         const std::string& sandbox_id) {
  CUBELET_TRY(ValidateSandboxId(sandbox_id));
  const uint64_t count = range.PodIpCount();
  if (count == 0) {
    return base::Fail("pod CIDR " + range.ToString() + " has no address for pods (prefix > 30)");
  }
  std::lock_guard<std::mutex> guard(mu_);
  std::string rdir = RangeDir(range);
  CUBELET_TRY_CTX(base::MkdirAll(rdir, 0700), "create IPAM directory");
  auto lock = FileLock::Take(dir_ + "/lock");
  if (!lock) return tl::unexpected(lock.error());

  auto held = ListRange(range);
  if (!held) return tl::unexpected(held.error());
  std::unordered_set<uint32_t> used;
  for (const auto& a : *held) {
    if (a.sandbox_id == sandbox_id) return Allocated{a.ip, true};
    used.insert(a.ip.value);
  }

  const uint32_t first = range.FirstPodIp().value;
  uint64_t start = 0;  // offset from first
  if (auto last = base::ReadFile(rdir + "/" + kLastReserved)) {
    auto ip = Ipv4::Parse(base::Trim(*last));
    if (ip && ip->value >= first && ip->value <= range.LastPodIp().value) {
      start = (ip->value - first + 1) % count;
    }
  }
  for (uint64_t i = 0; i < count; ++i) {
    Ipv4 ip{static_cast<uint32_t>(first + (start + i) % count)};
    if (used.count(ip.value)) continue;
    std::string path = rdir + "/" + ip.ToString();
    std::string tmp =
        path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(::syscall(SYS_gettid));
    CUBELET_TRY_CTX(base::WriteFile(tmp, sandbox_id + "\n"), "reserve IP " + ip.ToString());
    int rc = ::link(tmp.c_str(), path.c_str());
    int err = errno;
    ::unlink(tmp.c_str());
    if (rc != 0) {
      if (err == EEXIST) continue;  // a file we could not read as ours: treat as taken
      return base::Errno("reserve IP " + ip.ToString() + " (link " + path + ")", err);
    }
    // Losing last_reserved only makes the next search start earlier: not worth failing for.
    // (Not base::WriteFileAtomic: its fsync costs ~20 ms per pod here, see the header.)
    std::string last = rdir + "/" + kLastReserved;
    if (base::WriteFile(tmp, ip.ToString() + "\n") && ::rename(tmp.c_str(), last.c_str()) != 0) {
      ::unlink(tmp.c_str());
    }
    return Allocated{ip, false};
  }
  return base::Fail("no free IP in pod CIDR " + range.ToString() + " for sandbox " + sandbox_id +
                    ": all " + std::to_string(count) + " addresses in use");
}

Result<std::optional<Ipv4>> HostLocalIpam::Lookup(const Ipv4Cidr& range,
                                                  const std::string& sandbox_id) {
  std::lock_guard<std::mutex> guard(mu_);
  auto held = ListRange(range);
  if (!held) return tl::unexpected(held.error());
  for (const auto& a : *held) {
    if (a.sandbox_id == sandbox_id) return a.ip;
  }
  return std::nullopt;
}

Result<std::vector<IpAllocation>> HostLocalIpam::Release(const std::string& sandbox_id) {
  CUBELET_TRY(ValidateSandboxId(sandbox_id));
  std::lock_guard<std::mutex> guard(mu_);
  if (!base::PathExists(dir_)) return std::vector<IpAllocation>{};
  auto lock = FileLock::Take(dir_ + "/lock");
  if (!lock) return tl::unexpected(lock.error());
  auto all = ListAll();
  if (!all) return all;
  std::vector<IpAllocation> freed;
  for (const auto& a : *all) {
    if (a.sandbox_id != sandbox_id) continue;
    CUBELET_TRY(Free(a));
    freed.push_back(a);
  }
  return freed;
}

Result<std::vector<IpAllocation>> HostLocalIpam::List() {
  std::lock_guard<std::mutex> guard(mu_);
  return ListAll();
}

Result<std::vector<IpAllocation>> HostLocalIpam::GarbageCollect(
    const std::set<std::string>& live_sandbox_ids) {
  std::lock_guard<std::mutex> guard(mu_);
  if (!base::PathExists(dir_)) return std::vector<IpAllocation>{};
  auto lock = FileLock::Take(dir_ + "/lock");
  if (!lock) return tl::unexpected(lock.error());
  auto all = ListAll();
  if (!all) return all;
  std::vector<IpAllocation> freed;
  for (const auto& a : *all) {
    if (live_sandbox_ids.count(a.sandbox_id)) continue;
    CUBELET_TRY(Free(a));
    freed.push_back(a);
  }
  return freed;
}

}  // namespace runtime::net
