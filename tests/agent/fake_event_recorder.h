#pragma once
// An agent::EventRecorder for unit tests: keeps every event in memory.
#include <mutex>
#include <string>
#include <vector>

#include "agent/event_recorder.h"

namespace testsupport {

class FakeEventRecorder : public agent::EventRecorder {
 public:
  struct Recorded {
    agent::ObjectReference object;
    std::string type, reason, message;
  };
  void Event(const agent::ObjectReference& object, std::string_view type, std::string_view reason,
             std::string_view message) override {
    std::lock_guard lk(mu_);
    events_.push_back({object, std::string(type), std::string(reason), std::string(message)});
  }
  std::vector<Recorded> Events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  std::vector<std::string> Reasons() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& e : events_) out.push_back(e.reason);
    return out;
  }
  void Clear() {
    std::lock_guard lk(mu_);
    events_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Recorded> events_;
};

}  // namespace testsupport
