#pragma once
// /proc helpers for the cgroup tests.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "base/strings.h"

namespace cgtest {

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Trimmed(const std::string& path) { return std::string(base::Trim(Slurp(path))); }

// Fields of /proc/PID/stat after the "(comm)": [0] = state, [11] = utime, [12] = stime.
inline std::vector<std::string> StatFields(pid_t pid) {
  std::string s = Slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');
  if (close == std::string::npos) return {};
  return base::Split(s.substr(close + 2), ' ', true);
}

inline char ProcState(pid_t pid) {
  auto f = StatFields(pid);
  return f.empty() ? '?' : f[0][0];
}

inline uint64_t CpuTicks(pid_t pid) {
  auto f = StatFields(pid);
  return f.size() > 12 ? std::stoull(f[11]) + std::stoull(f[12]) : 0;
}

inline std::string Comm(pid_t pid) { return Trimmed("/proc/" + std::to_string(pid) + "/comm"); }

// Polls `pred` every 5 ms until true or timeout.
template <class F>
bool Eventually(F pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace cgtest
