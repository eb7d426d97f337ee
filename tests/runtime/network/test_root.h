#pragma once
// Per-process scratch directory for the pod network's privileged tests, with the sweep of what a
// crashed earlier run left (namespace mounts under /run/cubelet-test/podnet-*-<dead pid>).
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "base/file.h"
#include "base/strings.h"

namespace podnet_test {

inline constexpr const char* kBase = "/run/cubelet-test";

// Lazily unmounts every mount below dir (deepest first), then removes the tree.
inline void RemoveTree(const std::string& dir) {
  auto mi = base::ReadFile("/proc/self/mountinfo");
  if (mi) {
    std::vector<std::string> mounts;
    for (const auto& line : base::Split(*mi, '\n', true)) {
      auto cols = base::Split(line, ' ', true);
      if (cols.size() > 4 && base::StartsWith(cols[4], dir + "/")) mounts.push_back(cols[4]);
    }
    std::sort(mounts.rbegin(), mounts.rend());
    for (const auto& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Removes podnet-<name>-<pid> directories whose process is gone.
inline void SweepStale() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(kBase, ec)) {
    std::string n = e.path().filename();
    if (!base::StartsWith(n, "podnet-")) continue;
    auto dash = n.rfind('-');
    pid_t pid = static_cast<pid_t>(std::atoi(n.c_str() + dash + 1));
    if (pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH)) continue;
    RemoveTree(e.path());
  }
}

// Scratch dir for this process; sweeps stale ones the first time.
inline const std::string& Root(const std::string& name) {
  static std::string root = [&] {
    SweepStale();
    return std::string(kBase) + "/podnet-" + name + "-" + std::to_string(::getpid());
  }();
  return root;
}

}  // namespace podnet_test
