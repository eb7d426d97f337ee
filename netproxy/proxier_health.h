#pragma once
#include <chrono>
#include <string>

namespace netproxy {

struct ProxierHealth {
  bool healthy = true;
  // Last successful sync (epoch when none yet).
  std::chrono::system_clock::time_point last_updated;
  // Oldest change not yet applied (epoch when none pending).
  std::chrono::system_clock::time_point oldest_pending;
  std::string last_error;  // of the last failed sync, "" after a success
};

}  // namespace netproxy
