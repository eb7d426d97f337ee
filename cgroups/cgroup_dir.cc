#include "cgroups/cgroup_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "base/strings.h"

namespace cgroups {

std::string ErrnoText(int err) {
  const char* name = strerrorname_np(err);
  std::string out = name ? name : ("errno " + std::to_string(err));
  out += " (";
  out += std::strerror(err);
  out += ")";
  return out;
}

tl::unexpected<base::Error> SysFail(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += ErrnoText(err);
  return tl::unexpected<base::Error>(base::Error{err, std::move(msg)});
}

namespace {

std::string Quoted(const std::string& path) { return "cgroup '" + path + "'"; }

// Values in messages: one line, bounded, so a multi-line device list stays readable.
std::string ShowValue(std::string_view v) {
  std::string out(base::Trim(v));
  std::replace(out.begin(), out.end(), '\n', ' ');
  if (out.size() > 120) out = out.substr(0, 117) + "...";
  return out;
}

template <class T>
Result<T> ParseNumber(std::string_view text, std::string_view file, const std::string& cg) {
  std::string_view t = base::Trim(text);
  T v{};
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || ptr != t.data() + t.size()) {
    return base::Fail("parse " + std::string(file) + " of " + Quoted(cg) + ": not a number: '" +
                          ShowValue(t) + "'",
                      EINVAL);
  }
  return v;
}

}  // namespace

Result<CgroupDir> CgroupDir::Open(const std::string& abs_path) {
  int fd = ::open(abs_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SysFail("open " + Quoted(abs_path), errno);
  return CgroupDir(base::UniqueFd(fd), abs_path);
}

Result<std::string> CgroupDir::Read(std::string_view file) const {
  std::string name(file);
  base::UniqueFd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return SysFail("read " + name + " of " + Quoted(path_), errno);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysFail("read " + name + " of " + Quoted(path_), errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<uint64_t> CgroupDir::ReadU64(std::string_view file) const {
  auto text = Read(file);
  if (!text) return tl::unexpected(text.error());
  return ParseNumber<uint64_t>(*text, file, path_);
}

Result<int64_t> CgroupDir::ReadI64(std::string_view file) const {
  auto text = Read(file);
  if (!text) return tl::unexpected(text.error());
  return ParseNumber<int64_t>(*text, file, path_);
}

Result<> CgroupDir::Write(std::string_view file, std::string_view value) const {
  std::string name(file);
  auto context = [&] { return "write " + name + "=" + ShowValue(value) + " to " + Quoted(path_); };
  // O_TRUNC is ignored by cgroupfs; it keeps a plain-file test tree (tests/cgroups) exact.
  base::UniqueFd fd(::openat(fd_.get(), name.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return SysFail(context(), errno);
  for (;;) {
    ssize_t n = ::write(fd.get(), value.data(), value.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return SysFail(context(), errno);
    if (static_cast<size_t>(n) != value.size()) return base::Fail(context() + ": short write", EIO);
    return {};
  }
}

bool CgroupDir::Has(std::string_view file) const {
  std::string name(file);
  return ::faccessat(fd_.get(), name.c_str(), F_OK, 0) == 0;
}

Result<std::vector<pid_t>> CgroupDir::Procs() const {
  auto text = Read("cgroup.procs");
  if (!text) return tl::unexpected(text.error());
  std::vector<pid_t> out;
  for (const auto& line : base::Split(*text, '\n', true)) {
    pid_t pid = 0;
    auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec == std::errc() && pid > 0) out.push_back(pid);
  }
  return out;
}

Result<> CgroupDir::AddProcess(pid_t pid) const {
  return Write("cgroup.procs", std::to_string(pid));
}

Result<std::vector<std::string>> CgroupDir::Children() const {
  // A second fd: readdir consumes the position of the fd it is given.
  int dup = ::openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return SysFail("list children of " + Quoted(path_), errno);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    int err = errno;
    ::close(dup);
    return SysFail("list children of " + Quoted(path_), err);
  }
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type != DT_DIR) continue;
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    out.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<CgroupDir> CgroupDir::OpenChild(std::string_view name) const {
  std::string n(name);
  std::string child = path_ + "/" + n;
  int fd = ::openat(fd_.get(), n.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return SysFail("open " + Quoted(child), errno);
  return CgroupDir(base::UniqueFd(fd), child);
}

Result<bool> CgroupDir::MakeChild(std::string_view name) const {
  std::string n(name);
  if (::mkdirat(fd_.get(), n.c_str(), 0755) == 0) return true;
  if (errno == EEXIST) return false;
  return SysFail("create " + Quoted(path_ + "/" + n), errno);
}

Result<std::vector<std::string>> SplitCgroupPath(std::string_view path) {
  std::vector<std::string> out;
  for (auto& c : base::Split(path, '/', true)) {
    if (c == "." || c == "..") {
      return base::Fail("invalid cgroup path '" + std::string(path) +
                            "': '.' and '..' components are not allowed",
                        EINVAL);
    }
    if (c.find('\n') != std::string::npos || c.find('\0') != std::string::npos) {
      return base::Fail("invalid cgroup path '" + std::string(path) + "': control character",
                        EINVAL);
    }
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::string> JoinCgroupPath(std::string_view root, std::string_view path) {
  auto a = SplitCgroupPath(root);
  if (!a) return tl::unexpected(a.error());
  auto b = SplitCgroupPath(path);
  if (!b) return tl::unexpected(b.error());
  a->insert(a->end(), b->begin(), b->end());
  return base::Join(*a, "/");
}

namespace {

Result<> CollectProcs(const CgroupDir& dir, std::vector<pid_t>* out) {
  auto procs = dir.Procs();
  if (!procs) {
    if (procs.error().code == ENOENT || procs.error().code == ENODEV) return {};
    return tl::unexpected(procs.error());
  }
  out->insert(out->end(), procs->begin(), procs->end());
  auto children = dir.Children();
  if (!children) {
    if (children.error().code == ENOENT) return {};
    return tl::unexpected(children.error());
  }
  for (const auto& c : *children) {
    auto child = dir.OpenChild(c);
    if (!child) {
      if (child.error().code == ENOENT) continue;  // removed meanwhile
      return tl::unexpected(child.error());
    }
    CUBELET_TRY(CollectProcs(*child, out));
  }
  return {};
}

}  // namespace

Result<std::vector<pid_t>> ProcsRecursive(const std::string& abs_path) {
  std::vector<pid_t> out;
  auto dir = CgroupDir::Open(abs_path);
  if (!dir) {
    if (dir.error().code == ENOENT) return out;
    return tl::unexpected(dir.error());
  }
  CUBELET_TRY(CollectProcs(*dir, &out));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<> RemoveRecursive(const std::string& abs_path, std::chrono::milliseconds busy_timeout) {
  auto dir = CgroupDir::Open(abs_path);
  if (!dir) {
    if (dir.error().code == ENOENT) return {};
    return tl::unexpected(dir.error());
  }
  auto children = dir->Children();
  if (!children) return tl::unexpected(children.error());
  for (const auto& c : *children) CUBELET_TRY(RemoveRecursive(abs_path + "/" + c, busy_timeout));

  auto deadline = std::chrono::steady_clock::now() + busy_timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (::rmdir(abs_path.c_str()) == 0 || errno == ENOENT) return {};
    int err = errno;
    if (err != EBUSY || std::chrono::steady_clock::now() >= deadline) {
      std::string ctx = "remove " + Quoted(abs_path);
      if (err == EBUSY) {
        auto procs = dir->Procs();
        if (procs && !procs->empty()) {
          ctx += " (still has " + std::to_string(procs->size()) + " process(es), e.g. pid " +
                 std::to_string(procs->front()) + ")";
        }
      }
      return SysFail(ctx, err);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

}  // namespace cgroups
