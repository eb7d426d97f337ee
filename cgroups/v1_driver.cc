#include "cgroups/v1_driver.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <thread>

#include "base/log.h"
#include "base/strings.h"

namespace cgroups {
namespace {

std::string Hierarchy(const std::string& controller) {
  return controller == "systemd" ? "name=systemd" : controller;
}

// Kills every pid in `pids` except ourselves; a pid that is already gone is fine.
void KillPids(const std::vector<pid_t>& pids) {
  pid_t self = ::getpid();
  for (pid_t pid : pids) {
    if (pid == self) {
      base::log::Warn("not killing own process found in cgroup", {{"pid", pid}});
      continue;
    }
    ::kill(pid, SIGKILL);
  }
}

}  // namespace

V1Driver::V1Driver(std::map<std::string, std::string> hierarchies, std::string root,
                   std::string mount_root, DriverOptions options)
    : hierarchies_(std::move(hierarchies)),
      root_(std::move(root)),
      mount_root_(std::move(mount_root)),
      options_(options) {}

std::string V1Driver::Abs(const std::string& mount, const std::string& rel) const {
  return rel.empty() ? mount : mount + "/" + rel;
}

std::string V1Driver::Describe(const std::string& path) const {
  auto rel = JoinCgroupPath(root_, path);
  return mount_root_ + "/<controller>/" + (rel ? *rel : path);
}

std::vector<std::string> V1Driver::MountPoints() const {
  std::set<std::string> s;
  for (const auto& [ctrl, mount] : hierarchies_) s.insert(mount);
  return {s.begin(), s.end()};
}

std::string V1Driver::ControllerPath(const std::string& controller, const std::string& path) const {
  auto it = hierarchies_.find(Hierarchy(controller));
  if (it == hierarchies_.end()) return "";
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return "";
  return Abs(it->second, *rel);
}

Result<CgroupDir> V1Driver::Open(const std::string& controller, const std::string& path) const {
  auto it = hierarchies_.find(Hierarchy(controller));
  if (it == hierarchies_.end()) {
    return base::Fail("cgroup '" + path + "': the v1 " + controller +
                          " hierarchy is not mounted under " + mount_root_,
                      ENODEV);
  }
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  return CgroupDir::Open(Abs(it->second, *rel));
}

#define CUBELET_V1_OPENER(Method, Class, controller)                  \
  Result<v1::Class> V1Driver::Method(const std::string& path) const { \
    auto dir = Open(controller, path);                                \
    if (!dir) return tl::unexpected(dir.error());                     \
    return v1::Class(std::move(*dir));                                \
  }
CUBELET_V1_OPENER(Cpu, CpuController, "cpu")
CUBELET_V1_OPENER(Cpuacct, CpuacctController, "cpuacct")
CUBELET_V1_OPENER(Cpuset, CpusetController, "cpuset")
CUBELET_V1_OPENER(Memory, MemoryController, "memory")
CUBELET_V1_OPENER(Pids, PidsController, "pids")
CUBELET_V1_OPENER(Blkio, BlkioController, "blkio")
CUBELET_V1_OPENER(Devices, DevicesController, "devices")
CUBELET_V1_OPENER(Freezer, FreezerController, "freezer")
#undef CUBELET_V1_OPENER

bool V1Driver::MemoryHierarchical(const std::string& mount) {
  int known = memory_hierarchical_.load(std::memory_order_relaxed);
  if (known >= 0) return known == 1;
  // A child takes its parent's use_hierarchy and cannot change it under a parent that has it:
  // with the root's at 1 every cgroup of the hierarchy has it (kernels since 5.16 have no
  // other value).
  auto root = CgroupDir::Open(mount);
  bool yes = false;
  if (root) {
    auto v = root->ReadU64("memory.use_hierarchy");
    yes = v && *v == 1;
  }
  memory_hierarchical_.store(yes ? 1 : 0, std::memory_order_relaxed);
  return yes;
}

Result<> V1Driver::Create(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  auto comps = SplitCgroupPath(*rel);
  if (!comps) return tl::unexpected(comps.error());
  auto cpuset = hierarchies_.find("cpuset");
  auto memory = hierarchies_.find("memory");
  for (const auto& mount : MountPoints()) {
    bool is_cpuset = cpuset != hierarchies_.end() && cpuset->second == mount;
    bool is_memory = memory != hierarchies_.end() && memory->second == mount;
    auto set_use_hierarchy = [&](const CgroupDir& parent, const std::string& name) -> Result<> {
      if (MemoryHierarchical(mount)) return {};  // inherited
      auto mem = parent.OpenChild(name);
      if (!mem) return tl::unexpected(mem.error());
      auto r = v1::MemoryController(std::move(*mem)).SetUseHierarchy();
      if (!r) base::log::Debug("memory.use_hierarchy not set", {{"error", r.error().message}});
      return {};
    };
    if (comps->size() > 1) {
      // The parent levels usually exist (a container's pod cgroup): open the parent at once
      // instead of a mkdir + open per level, in each of the hierarchies (~100 fewer cgroupfs
      // calls per container on a v1 host). Only a missing parent takes the walk below, and in
      // the cpuset hierarchy a parent without cpus or mems (whose ancestors might lack them:
      // a cpuset with values has ancestors with values).
      std::vector<std::string> up(comps->begin(), comps->end() - 1);
      auto parent = CgroupDir::Open(Abs(mount, base::Join(up, "/")));
      if (!parent && parent.error().code != ENOENT) return tl::unexpected(parent.error());
      std::string cpus, mems;
      bool parent_ok = parent.has_value();
      if (parent_ok && is_cpuset) {
        for (auto [file, out] : {std::pair{"cpuset.cpus", &cpus}, std::pair{"cpuset.mems", &mems}}) {
          auto v = parent->Read(file);
          if (!v) return tl::unexpected(v.error());
          *out = std::string(base::Trim(*v));
        }
        parent_ok = !cpus.empty() && !mems.empty();
      }
      if (parent_ok) {
        auto created = parent->MakeChild(comps->back());
        if (!created) return tl::unexpected(created.error());
        if (is_cpuset) {
          auto child = parent->OpenChild(comps->back());
          if (!child) return tl::unexpected(child.error());
          v1::CpusetController cs(std::move(*child));
          if (*created) {
            // A new cpuset is empty (or a copy of its parent's with clone_children).
            CUBELET_TRY(cs.SetCpus(cpus));
            CUBELET_TRY(cs.SetMems(mems));
          } else {
            CUBELET_TRY(cs.InheritFrom(*parent));
          }
        }
        if (is_memory && *created) CUBELET_TRY(set_use_hierarchy(*parent, comps->back()));
        continue;
      }
    }
    auto cur = CgroupDir::Open(mount);
    if (!cur) return tl::unexpected(cur.error());
    for (const auto& name : *comps) {
      auto created = cur->MakeChild(name);
      if (!created) return tl::unexpected(created.error());
      auto child = cur->OpenChild(name);
      if (!child) return tl::unexpected(child.error());
      if (is_cpuset) {
        // Checked at every level, not only new ones: an existing level with empty values (made
        // by someone else) would still refuse our tasks.
        auto cs = cur->OpenChild(name);
        if (!cs) return tl::unexpected(cs.error());
        CUBELET_TRY(v1::CpusetController(std::move(*cs)).InheritFrom(*cur));
      }
      if (is_memory && *created) CUBELET_TRY(set_use_hierarchy(*cur, name));
      cur = std::move(child);
    }
  }
  return {};
}

Result<> V1Driver::Apply(const std::string& path, const Resources& r) {
  if (r.cpu_shares || r.cpu_quota_us || r.cpu_period_us) {
    auto cpu = Cpu(path);
    if (!cpu) return tl::unexpected(cpu.error());
    if (r.cpu_shares) CUBELET_TRY(cpu->SetShares(*r.cpu_shares));
    if (r.cpu_quota_us || r.cpu_period_us)
      CUBELET_TRY(cpu->SetBandwidth(r.cpu_quota_us, r.cpu_period_us));
  }
  if (r.cpuset_cpus || r.cpuset_mems) {
    auto cs = Cpuset(path);
    if (!cs) return tl::unexpected(cs.error());
    if (r.cpuset_mems) CUBELET_TRY(cs->SetMems(*r.cpuset_mems));
    if (r.cpuset_cpus) CUBELET_TRY(cs->SetCpus(*r.cpuset_cpus));
  }
  if (r.memory_limit_bytes) {
    auto mem = Memory(path);
    if (!mem) return tl::unexpected(mem.error());
    CUBELET_TRY(mem->SetLimit(*r.memory_limit_bytes));
  }
  // memory.min and memory.high have no v1 equivalent (soft_limit_in_bytes means something else);
  // Resources documents them as v2-only, so they are ignored here.
  if (r.memory_min_bytes || r.memory_high_bytes)
    base::log::Debug("v1: memory.min/memory.high ignored", {{"cgroup", path}});
  if (r.pids_limit) {
    auto pids = Pids(path);
    if (!pids) return tl::unexpected(pids.error());
    CUBELET_TRY(pids->SetMax(*r.pids_limit));
  }
  if (r.blkio_weight || !r.blkio_throttle.empty()) {
    auto blkio = Blkio(path);
    if (!blkio) return tl::unexpected(blkio.error());
    if (r.blkio_weight) CUBELET_TRY(blkio->SetWeight(*r.blkio_weight));
    for (const auto& t : r.blkio_throttle) CUBELET_TRY(blkio->SetThrottle(t));
  }
  if (r.devices) {
    auto dev = Devices(path);
    if (!dev) return tl::unexpected(dev.error());
    CUBELET_TRY(dev->ApplyAllowList(*r.devices));
  }
  return {};
}

Result<> V1Driver::AddProcess(const std::string& path, pid_t pid) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  for (const auto& mount : MountPoints()) {
    auto dir = CgroupDir::Open(Abs(mount, *rel));
    if (!dir) return tl::unexpected(dir.error());
    CUBELET_TRY(dir->AddProcess(pid));
  }
  return {};
}

Result<std::vector<pid_t>> V1Driver::Procs(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  std::set<pid_t> all;
  for (const auto& mount : MountPoints()) {
    auto dir = CgroupDir::Open(Abs(mount, *rel));
    if (!dir) return tl::unexpected(dir.error());
    auto procs = dir->Procs();
    if (!procs) return tl::unexpected(procs.error());
    all.insert(procs->begin(), procs->end());
  }
  return std::vector<pid_t>(all.begin(), all.end());
}

Result<> V1Driver::Freeze(const std::string& path) {
  auto fz = Freezer(path);
  if (!fz) return tl::unexpected(fz.error());
  return fz->Freeze(options_.freeze_timeout);
}

Result<> V1Driver::Thaw(const std::string& path) {
  auto fz = Freezer(path);
  if (!fz) return tl::unexpected(fz.error());
  return fz->Thaw(options_.freeze_timeout);
}

Result<std::vector<pid_t>> V1Driver::AllProcsRecursive(const std::string& rel) const {
  std::set<pid_t> all;
  for (const auto& mount : MountPoints()) {
    auto procs = ProcsRecursive(Abs(mount, rel));
    if (!procs) return tl::unexpected(procs.error());
    all.insert(procs->begin(), procs->end());
  }
  return std::vector<pid_t>(all.begin(), all.end());
}

Result<> V1Driver::KillAll(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  if (rel->empty())
    return base::Fail("kill all in cgroup '" + path + "': refusing to kill a hierarchy root",
                      EPERM);

  // Frozen first so that nothing forks between reading cgroup.procs and the kill; frozen tasks
  // keep the pending SIGKILL and die as soon as they are thawed.
  std::optional<v1::FreezerController> fz;
  if (auto f = Freezer(path)) {
    fz.emplace(std::move(*f));
    if (auto r = fz->Freeze(options_.freeze_timeout); !r) {
      base::log::Warn("kill all: freeze failed, killing unfrozen",
                      {{"cgroup", path}, {"error", r.error().message}});
      fz.reset();
    }
  }
  auto pids = AllProcsRecursive(*rel);
  if (!pids) {
    if (fz) (void)fz->Thaw(options_.freeze_timeout);
    return tl::unexpected(pids.error());
  }
  KillPids(*pids);
  if (fz) CUBELET_TRY(fz->Thaw(options_.freeze_timeout));

  auto deadline = std::chrono::steady_clock::now() + options_.kill_timeout;
  auto pause = std::chrono::microseconds(500);
  for (int round = 1;; ++round) {
    auto left = AllProcsRecursive(*rel);
    if (!left) return tl::unexpected(left.error());
    if (left->empty()) return {};
    if (std::chrono::steady_clock::now() >= deadline) {
      return base::Fail("kill all in cgroup '" + path + "': " + std::to_string(left->size()) +
                            " process(es) still there after " +
                            std::to_string(options_.kill_timeout.count()) + " ms (e.g. pid " +
                            std::to_string(left->front()) + ")",
                        ETIMEDOUT);
    }
    if (round % 8 == 0) KillPids(*left);  // anything that slipped in (e.g. unfrozen fork)
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

Result<uint64_t> V1Driver::OomKillCount(const std::string& path) {
  auto mem = Open("memory", path);
  if (!mem) return tl::unexpected(mem.error());
  // Depth-first over the subtree, so kills in container cgroups count for the pod too. A child
  // removed while we walk is skipped; the cgroup itself must exist.
  uint64_t total = 0;
  std::vector<std::pair<CgroupDir, bool>> stack;  // (dir, is the requested cgroup)
  stack.emplace_back(std::move(*mem), true);
  while (!stack.empty()) {
    auto [dir, top] = std::move(stack.back());
    stack.pop_back();
    auto text = dir.Read("memory.oom_control");
    if (!text && text.error().code == ENOENT && !top) continue;
    if (!text) return tl::unexpected(text.error());
    auto oom = ParseOomControl(*text);
    if (!oom.oom_kill) {
      return base::Fail("memory.oom_control of cgroup '" + dir.path() +
                            "' has no oom_kill line (kernel older than 4.13): OOM kills cannot be "
                            "counted, watch OOM events with OomWatcher instead",
                        ENOTSUP);
    }
    total += *oom.oom_kill;
    auto children = dir.Children();
    if (!children && children.error().code == ENOENT && !top) continue;
    if (!children) return tl::unexpected(children.error());
    for (const auto& c : *children) {
      auto child = dir.OpenChild(c);
      if (child) stack.emplace_back(std::move(*child), false);
    }
  }
  return total;
}

Result<Stats> V1Driver::GetStats(const std::string& path) {
  Stats s;
  if (auto acct = Cpuacct(path)) {
    auto usage = acct->UsageNs();
    if (!usage) return tl::unexpected(usage.error());
    s.cpu_usage_ns = *usage;
  } else if (acct.error().code != ENODEV) {
    return tl::unexpected(acct.error());
  }
  if (auto mem = Memory(path)) {
    auto usage = mem->Usage();
    if (!usage) return tl::unexpected(usage.error());
    auto stat = mem->Stat();
    if (!stat) return tl::unexpected(stat.error());
    auto limit = mem->Limit();
    if (!limit) return tl::unexpected(limit.error());
    s.memory_usage_bytes = *usage;
    uint64_t inactive_file = Lookup(*stat, "total_inactive_file").value_or(0);
    s.memory_working_set_bytes = *usage > inactive_file ? *usage - inactive_file : 0;
    s.memory_rss_bytes = Lookup(*stat, "total_rss").value_or(0);
    s.memory_limit_bytes = *limit;
    auto ooms = OomKillCount(path);
    if (ooms) {
      s.oom_kill_count = *ooms;
    } else if (ooms.error().code != ENOTSUP) {
      return tl::unexpected(ooms.error());
    }
  } else if (mem.error().code != ENODEV) {
    return tl::unexpected(mem.error());
  }
  if (auto pids = Pids(path)) {
    auto cur = pids->Current();
    if (!cur) return tl::unexpected(cur.error());
    s.pids_current = *cur;
  } else if (pids.error().code != ENODEV) {
    return tl::unexpected(pids.error());
  }
  return s;
}

Result<> V1Driver::Remove(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return tl::unexpected(rel.error());
  if (rel->empty())
    return base::Fail("remove cgroup '" + path + "': refusing to remove a hierarchy root", EPERM);
  Result<> first;
  for (const auto& mount : MountPoints()) {
    auto r = RemoveRecursive(Abs(mount, *rel), options_.remove_busy_timeout);
    if (!r && first) first = r;  // keep going: leave as little behind as possible
  }
  return first;
}

bool V1Driver::Exists(const std::string& path) {
  auto rel = JoinCgroupPath(root_, path);
  if (!rel) return false;
  for (const auto& mount : MountPoints())
    if (::access(Abs(mount, *rel).c_str(), F_OK) != 0) return false;
  return !hierarchies_.empty();
}

}  // namespace cgroups
