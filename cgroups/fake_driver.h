#pragma once
// In-memory cgroups::Driver for unit tests of the layers above (runtime, agent): it records every
// call, keeps the applied Resources and the process lists per path, and can be told to fail.
// No kernel objects are touched (KillAll only forgets the pids; it does not signal them).
#include <map>
#include <string>
#include <vector>

#include "cgroups/driver.h"

namespace cgroups {

class FakeDriver final : public Driver {
 public:
  struct Cgroup {
    Resources resources;  // merged: fields set by later Apply calls overwrite earlier ones
    std::vector<pid_t> procs;
    bool frozen = false;
    Stats stats;  // returned by GetStats; tests set it (oom_kill_count also feeds OomKillCount)
  };

  explicit FakeDriver(Version v = Version::kV2) : version_(v) {}

  // "Create kubepods/pod1", "Apply kubepods/pod1", "AddProcess kubepods/pod1 42", ...
  std::vector<std::string> calls;
  std::map<std::string, Cgroup> cgroups;  // every created path, parents included
  // Method name ("Create", "Apply", ...) → error returned by the next call of that method.
  std::map<std::string, base::Error> fail_next;

  Version version() const override { return version_; }
  std::string Describe(const std::string& path) const override { return "fake:/" + path; }
  Result<> Create(const std::string& path) override;
  Result<> Apply(const std::string& path, const Resources& r) override;
  Result<> AddProcess(const std::string& path, pid_t pid) override;
  Result<std::vector<pid_t>> Procs(const std::string& path) override;
  Result<> Freeze(const std::string& path) override;
  Result<> Thaw(const std::string& path) override;
  Result<> KillAll(const std::string& path) override;
  Result<Stats> GetStats(const std::string& path) override;
  Result<> Remove(const std::string& path) override;
  bool Exists(const std::string& path) override;
  Result<uint64_t> OomKillCount(const std::string& path) override;
  std::string ControllerPath(const std::string& controller, const std::string& path) const override;

 private:
  Result<> Enter(const std::string& method, const std::string& detail);
  Result<Cgroup*> Find(const std::string& path);
  Version version_;
};

}  // namespace cgroups
