#include "cgroups/v2_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "base/log.h"
#include "base/strings.h"
#include "cgroups/bpf_device_filter.h"
#include "cgroups/parse.h"

namespace cgroups {

V2Driver::V2Driver(std::string mount, std::string root, DriverOptions options)
    : mount_(std::move(mount)), root_(std::move(root)), options_(options) {}

const std::vector<std::string>& V2Driver::WantedControllers() {
  static const std::vector<std::string> k = {"cpu", "cpuset", "io", "memory", "pids", "hugetlb"};
  return k;
}

std::string V2Driver::Describe(const std::string& path) const { return ControllerPath("", path); }

std::string V2Driver::ControllerPath(const std::string&, const std::string& path) const {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return "";
  return rel->empty() ? mount_ : mount_ + "/" + *rel;
}

Result<CgroupDir> V2Driver::Open(const std::string& path) const {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  return CgroupDir::Open(rel->empty() ? mount_ : mount_ + "/" + *rel);
}

Result<> V2Driver::EnableControllers(const CgroupDir& dir) {
  auto available = dir.Read("cgroup.controllers");
  if (!available) return tl::unexpected(available.error());
  auto enabled = dir.Read("cgroup.subtree_control");
  if (!enabled) return tl::unexpected(enabled.error());
  auto have = ParseControllerList(*available);
  auto on = ParseControllerList(*enabled);
  std::vector<std::string> add;
  for (const auto& c : WantedControllers()) {
    bool is_available = std::find(have.begin(), have.end(), c) != have.end();
    bool is_on = std::find(on.begin(), on.end(), c) != on.end();
    if (is_available && !is_on) add.push_back("+" + c);
  }
  if (add.empty()) return {};
  if (dir.Write("cgroup.subtree_control", base::Join(add, " "))) return {};
  // One at a time, so the error names the controller that was refused.
  for (const auto& a : add) {
    auto r = dir.Write("cgroup.subtree_control", a);
    if (!r && r.error().code == EBUSY) {
      return tl::unexpected(r.error().Wrap(
          "enable controllers: the cgroup has processes of its own (cgroup v2 allows controllers "
          "to be enabled only for cgroups without processes, except the root)"));
    }
    if (!r) return r;
  }
  return {};
}

Result<> V2Driver::Create(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  auto comps = SplitCgroupPath(*rel);
  if (!comps) return tl::unexpected(comps.error());
  auto root_comps = SplitCgroupPath(root_);
  if (!root_comps) return tl::unexpected(root_comps.error());
  auto cur = CgroupDir::Open(mount_);
  if (!cur) return tl::unexpected(cur.error());
  for (size_t depth = 0; depth < comps->size(); ++depth) {
    // `cur` is at `depth`; the driver's root is at root_comps->size(). Only the driver's root and
    // its descendants get controllers enabled, and never the leaf itself (it may get processes).
    if (depth >= root_comps->size()) CUBELET_TRY(EnableControllers(*cur));
    auto created = cur->MakeChild((*comps)[depth]);
    if (!created) return tl::unexpected(created.error());
    auto child = cur->OpenChild((*comps)[depth]);
    if (!child) return tl::unexpected(child.error());
    cur = std::move(child);
  }
  return {};
}

Result<> V2Driver::WriteController(const CgroupDir& dir, const char* controller, const char* file,
                                   const std::string& value) {
  auto r = dir.Write(file, value);
  if (!r && r.error().code == ENOENT) {
    auto avail = dir.Read("cgroup.controllers");
    std::string have = avail ? std::string(base::Trim(*avail)) : "?";
    return tl::unexpected(r.error().Wrap(std::string("the ") + controller +
                                         " controller is not enabled for this cgroup (its "
                                         "cgroup.controllers: '" +
                                         have + "')"));
  }
  return r;
}

Result<> V2Driver::Apply(const std::string& path, const Resources& r) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  if (r.cpu_shares) {
    CUBELET_TRY(
        WriteController(*dir, "cpu", "cpu.weight", std::to_string(SharesToWeight(*r.cpu_shares))));
  }
  if (r.cpu_quota_us || r.cpu_period_us) {
    CpuMax m;
    if (!r.cpu_quota_us || !r.cpu_period_us) {
      // cpu.max holds both; keep the half that is not being changed.
      auto cur = dir->Read("cpu.max");
      if (cur) {
        auto parsed = ParseCpuMax(*cur);
        if (!parsed) return tl::unexpected(parsed.error().Wrap("cgroup '" + dir->path() + "'"));
        m = *parsed;
      }
    }
    if (r.cpu_quota_us) m.quota_us = *r.cpu_quota_us < 0 ? -1 : *r.cpu_quota_us;
    if (r.cpu_period_us) m.period_us = *r.cpu_period_us;
    CUBELET_TRY(WriteController(*dir, "cpu", "cpu.max", FormatCpuMax(m)));
  }
  if (r.cpuset_mems) CUBELET_TRY(WriteController(*dir, "cpuset", "cpuset.mems", *r.cpuset_mems));
  if (r.cpuset_cpus) CUBELET_TRY(WriteController(*dir, "cpuset", "cpuset.cpus", *r.cpuset_cpus));
  if (r.memory_min_bytes) {
    CUBELET_TRY(
        WriteController(*dir, "memory", "memory.min", FormatMaxOrNumber(*r.memory_min_bytes)));
  }
  if (r.memory_high_bytes) {
    CUBELET_TRY(
        WriteController(*dir, "memory", "memory.high", FormatMaxOrNumber(*r.memory_high_bytes)));
  }
  if (r.memory_limit_bytes) {
    CUBELET_TRY(
        WriteController(*dir, "memory", "memory.max", FormatMaxOrNumber(*r.memory_limit_bytes)));
  }
  if (r.pids_limit) {
    CUBELET_TRY(WriteController(*dir, "pids", "pids.max", FormatMaxOrNumber(*r.pids_limit)));
  }
  if (r.blkio_weight) {
    // BFQ's own weight takes the blkio range as is; io.weight (blk-iocost) has [1, 10000].
    if (dir->Has("io.bfq.weight")) {
      CUBELET_TRY(dir->Write("io.bfq.weight", std::to_string(*r.blkio_weight)));
    } else {
      CUBELET_TRY(
          WriteController(*dir, "io", "io.weight",
                          "default " + std::to_string(BlkioWeightToIoWeight(*r.blkio_weight))));
    }
  }
  for (const auto& t : r.blkio_throttle)
    CUBELET_TRY(WriteController(*dir, "io", "io.max", FormatIoMax(t)));
  if (r.devices) {
    bool allow_all = !r.devices->empty() && IsAllowAll(r.devices->back());
    auto res = allow_all ? ClearDeviceFilters(dir->fd(), dir->path())
                         : SetDeviceFilter(dir->fd(), dir->path(), *r.devices);
    if (!res) return res;
  }
  return {};
}

Result<> V2Driver::AddProcess(const std::string& path, pid_t pid) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  auto r = dir->AddProcess(pid);
  if (!r && r.error().code == EBUSY) {
    return tl::unexpected(r.error().Wrap(
        "the cgroup has controllers enabled in cgroup.subtree_control (processes may only live "
        "in leaf cgroups)"));
  }
  return r;
}

Result<std::vector<pid_t>> V2Driver::Procs(const std::string& path) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  return dir->Procs();
}

Result<> V2Driver::WaitEvent(const CgroupDir& dir, const char* key, uint64_t want,
                             std::chrono::milliseconds timeout, const std::string& what) {
  // cgroup.events raises POLLPRI on every change, so this sleeps until the kernel says so; the
  // 50 ms cap only guards against a notification that raced with the read.
  base::UniqueFd fd(::openat(dir.fd(), "cgroup.events", O_RDONLY | O_CLOEXEC));
  if (!fd) return SysFail(what + ": open cgroup.events of cgroup '" + dir.path() + "'", errno);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    char buf[256];
    ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    if (n < 0) return SysFail(what + ": read cgroup.events of cgroup '" + dir.path() + "'", errno);
    auto events = ParseFlatKeyed(std::string_view(buf, static_cast<size_t>(n)));
    auto value = Lookup(events, key);
    if (value && *value == want) return {};
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return base::Fail(what + " cgroup '" + dir.path() + "': cgroup.events still has '" + key +
                            " " + std::to_string(value.value_or(0)) + "' after " +
                            std::to_string(timeout.count()) + " ms",
                        ETIMEDOUT);
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    pollfd p{fd.get(), POLLPRI, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long>(left + 1, 50)));
  }
}

Result<> V2Driver::Freeze(const std::string& path) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  if (!dir->Has("cgroup.freeze"))
    return base::Fail("freeze cgroup '" + dir->path() + "': no cgroup.freeze (Linux < 5.2)",
                      ENOTSUP);
  CUBELET_TRY(dir->Write("cgroup.freeze", "1"));
  auto r = WaitEvent(*dir, "frozen", 1, options_.freeze_timeout, "freeze");
  if (!r) (void)dir->Write("cgroup.freeze", "0");  // never leave it half frozen
  return r;
}

Result<> V2Driver::Thaw(const std::string& path) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  if (!dir->Has("cgroup.freeze"))
    return base::Fail("thaw cgroup '" + dir->path() + "': no cgroup.freeze (Linux < 5.2)", ENOTSUP);
  CUBELET_TRY(dir->Write("cgroup.freeze", "0"));
  return WaitEvent(*dir, "frozen", 0, options_.freeze_timeout, "thaw");
}

Result<> V2Driver::KillAll(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  if (rel->empty())
    return base::Fail("kill all in cgroup '" + path + "': refusing to kill the hierarchy root",
                      EPERM);
  auto dir = Open(path);
  if (!dir) {
    if (dir.error().code == ENOENT) return {};  // nothing to kill
    return tl::unexpected(dir.error());
  }

  if (use_cgroup_kill_ && dir->Has("cgroup.kill")) {
    // Kills the whole subtree atomically, including tasks forking at that moment.
    CUBELET_TRY(dir->Write("cgroup.kill", "1"));
  } else {
    bool frozen = false;
    if (auto f = Freeze(path)) {
      frozen = true;
    } else {
      base::log::Warn("kill all: freeze failed, killing unfrozen",
                      {{"cgroup", path}, {"error", f.error().message}});
    }
    auto pids = ProcsRecursive(dir->path());
    if (!pids) return tl::unexpected(pids.error());
    for (pid_t pid : *pids)
      if (pid != ::getpid()) ::kill(pid, SIGKILL);
    if (frozen) CUBELET_TRY(Thaw(path));
  }
  return WaitEvent(*dir, "populated", 0, options_.kill_timeout, "kill all in");
}

Result<uint64_t> V2Driver::OomKillCount(const std::string& path) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  if (!dir->Has("memory.events")) {
    return base::Fail("count OOM kills of cgroup '" + dir->path() +
                          "': no memory.events (the memory controller is not enabled for it)",
                      ENOTSUP);
  }
  auto text = dir->Read("memory.events");
  if (!text) return tl::unexpected(text.error());
  return Lookup(ParseFlatKeyed(*text), "oom_kill").value_or(0);
}

Result<Stats> V2Driver::GetStats(const std::string& path) {
  auto dir = Open(path);
  if (!dir) return tl::unexpected(dir.error());
  Stats s;
  auto read_keyed = [&](const char* file) -> Result<FlatKeyed> {
    auto text = dir->Read(file);
    if (!text) return tl::unexpected(text.error());
    return ParseFlatKeyed(*text);
  };
  // cpu.stat's usage_usec is provided by the core, even without the cpu controller.
  auto cpu = read_keyed("cpu.stat");
  if (!cpu) return tl::unexpected(cpu.error());
  s.cpu_usage_ns = Lookup(*cpu, "usage_usec").value_or(0) * 1000;
  if (dir->Has("memory.current")) {
    auto usage = dir->ReadU64("memory.current");
    if (!usage) return tl::unexpected(usage.error());
    auto stat = read_keyed("memory.stat");
    if (!stat) return tl::unexpected(stat.error());
    auto max = dir->Read("memory.max");
    if (!max) return tl::unexpected(max.error());
    s.memory_usage_bytes = *usage;
    uint64_t inactive_file = Lookup(*stat, "inactive_file").value_or(0);
    s.memory_working_set_bytes = *usage > inactive_file ? *usage - inactive_file : 0;
    s.memory_rss_bytes = Lookup(*stat, "anon").value_or(0);
    auto limit = ParseMaxOrNumber(*max);
    s.memory_limit_bytes = limit && *limit > 0 ? static_cast<uint64_t>(*limit) : 0;
    auto ooms = OomKillCount(path);
    if (!ooms) return tl::unexpected(ooms.error());
    s.oom_kill_count = *ooms;
  }
  if (dir->Has("pids.current")) {
    auto cur = dir->ReadU64("pids.current");
    if (!cur) return tl::unexpected(cur.error());
    s.pids_current = *cur;
  }
  return s;
}

Result<> V2Driver::Remove(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  if (rel->empty())
    return base::Fail("remove cgroup '" + path + "': refusing to remove the hierarchy root", EPERM);
  return RemoveRecursive(mount_ + "/" + *rel, options_.remove_busy_timeout);
}

bool V2Driver::Exists(const std::string& path) {
  auto p = ControllerPath("", path);
  return !p.empty() && ::access(p.c_str(), F_OK) == 0;
}

}  // namespace cgroups
