#include "agent/api_client.h"

#include <nlohmann/json.hpp>

namespace agent {

void StreamCancel::Cancel() {
  cancelled_.store(true);
  std::lock_guard lk(mu_);
  if (interrupt_) interrupt_();
}

void StreamCancel::SetInterrupt(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  interrupt_ = std::move(fn);
}

void StreamCancel::ClearInterrupt() {
  std::lock_guard lk(mu_);
  interrupt_ = nullptr;
}

std::string DescribeStatus(const ApiResponse& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string code = "HTTP " + std::to_string(r.status);
  if (j.is_object() && j.value("kind", "") == "Status") {
    std::string reason = j.value("reason", "");
    std::string msg = j.value("message", "");
    return code + (reason.empty() ? "" : " " + reason) + ": " + msg;
  }
  std::string body = r.body.size() > 512 ? r.body.substr(0, 512) + "..." : r.body;
  return code + ": " + body;
}

}  // namespace agent
