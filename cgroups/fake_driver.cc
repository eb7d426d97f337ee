#include "cgroups/fake_driver.h"

#include <algorithm>
#include <cerrno>

#include "base/strings.h"

namespace cgroups {
namespace {

std::string Clean(const std::string& path) { return base::Join(base::Split(path, '/', true), "/"); }

template <class T>
void Merge(std::optional<T>& into, const std::optional<T>& from) {
  if (from) into = from;
}

}  // namespace

Result<> FakeDriver::Enter(const std::string& method, const std::string& detail) {
  calls.push_back(method + " " + detail);
  auto it = fail_next.find(method);
  if (it == fail_next.end()) return {};
  base::Error e = it->second;
  fail_next.erase(it);
  return tl::unexpected(e);
}

Result<FakeDriver::Cgroup*> FakeDriver::Find(const std::string& path) {
  auto it = cgroups.find(Clean(path));
  if (it == cgroups.end()) return base::Fail("fake cgroup '" + path + "' does not exist", ENOENT);
  return &it->second;
}

Result<> FakeDriver::Create(const std::string& path) {
  CUBELET_TRY(Enter("Create", Clean(path)));
  std::string cur;
  cgroups[""];
  for (const auto& c : base::Split(path, '/', true)) {
    cur += (cur.empty() ? "" : "/") + c;
    cgroups[cur];
  }
  return {};
}

Result<> FakeDriver::Apply(const std::string& path, const Resources& r) {
  CUBELET_TRY(Enter("Apply", Clean(path)));
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  Resources& have = (*cg)->resources;
  Merge(have.cpu_shares, r.cpu_shares);
  Merge(have.cpu_quota_us, r.cpu_quota_us);
  Merge(have.cpu_period_us, r.cpu_period_us);
  Merge(have.memory_limit_bytes, r.memory_limit_bytes);
  Merge(have.memory_min_bytes, r.memory_min_bytes);
  Merge(have.memory_high_bytes, r.memory_high_bytes);
  Merge(have.pids_limit, r.pids_limit);
  Merge(have.blkio_weight, r.blkio_weight);
  Merge(have.devices, r.devices);
  Merge(have.cpuset_cpus, r.cpuset_cpus);
  Merge(have.cpuset_mems, r.cpuset_mems);
  if (!r.blkio_throttle.empty()) have.blkio_throttle = r.blkio_throttle;
  return {};
}

Result<> FakeDriver::AddProcess(const std::string& path, pid_t pid) {
  CUBELET_TRY(Enter("AddProcess", Clean(path) + " " + std::to_string(pid)));
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  for (auto& [p, other] : cgroups) std::erase(other.procs, pid);  // a pid lives in one cgroup
  (*cg)->procs.push_back(pid);
  return {};
}

Result<std::vector<pid_t>> FakeDriver::Procs(const std::string& path) {
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->procs;
}

Result<> FakeDriver::Freeze(const std::string& path) {
  CUBELET_TRY(Enter("Freeze", Clean(path)));
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  (*cg)->frozen = true;
  return {};
}

Result<> FakeDriver::Thaw(const std::string& path) {
  CUBELET_TRY(Enter("Thaw", Clean(path)));
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  (*cg)->frozen = false;
  return {};
}

Result<> FakeDriver::KillAll(const std::string& path) {
  CUBELET_TRY(Enter("KillAll", Clean(path)));
  std::string p = Clean(path);
  if (!cgroups.count(p)) return base::Fail("fake cgroup '" + path + "' does not exist", ENOENT);
  for (auto& [name, cg] : cgroups)
    if (name == p || base::StartsWith(name, p + "/")) cg.procs.clear();
  return {};
}

Result<Stats> FakeDriver::GetStats(const std::string& path) {
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  Stats s = (*cg)->stats;
  s.pids_current = std::max<uint64_t>(s.pids_current, (*cg)->procs.size());
  return s;
}

Result<> FakeDriver::Remove(const std::string& path) {
  CUBELET_TRY(Enter("Remove", Clean(path)));
  std::string p = Clean(path);
  for (auto it = cgroups.begin(); it != cgroups.end();) {
    bool under = it->first == p || base::StartsWith(it->first, p + "/");
    if (under && !it->second.procs.empty())
      return base::Fail("fake cgroup '" + it->first + "' still has processes", EBUSY);
    ++it;
  }
  std::erase_if(cgroups, [&](const auto& kv) {
    return kv.first == p || base::StartsWith(kv.first, p + "/");
  });
  return {};
}

bool FakeDriver::Exists(const std::string& path) { return cgroups.count(Clean(path)) > 0; }

Result<uint64_t> FakeDriver::OomKillCount(const std::string& path) {
  auto cg = Find(path);
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->stats.oom_kill_count;
}

std::string FakeDriver::ControllerPath(const std::string& controller,
                                       const std::string& path) const {
  return "/fake/" + controller + "/" + Clean(path);
}

}  // namespace cgroups
