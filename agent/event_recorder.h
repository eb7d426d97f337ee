#pragma once
// Kubernetes events (core/v1 Event) about nodes and pods, as the kubelet records them: callers
// never wait for the API server. ApiEventRecorder queues events and one thread of its own POSTs
// them to /api/v1/namespaces/<ns>/events; a repeat of an event already sent (same object, type,
// reason and message) PATCHes that event's count and lastTimestamp instead, like client-go's
// EventCorrelator, so `kubectl describe` shows "x5 over 2m" rather than five lines.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "agent/api_client.h"
#include "base/time.h"

namespace agent {

// core/v1 ObjectReference; empty fields are omitted.
struct ObjectReference {
  std::string kind;        // "Pod", "Node"
  std::string namespace_;  // "" for cluster-scoped objects (the event then goes to "default")
  std::string name;
  std::string uid;
  std::string api_version;
  std::string resource_version;
  std::string field_path;  // "spec.containers{main}"
};

// The reference the kubelet uses for its node: uid is the node *name* (kubelet's nodeRef), which
// `kubectl describe node` searches for besides the real uid.
ObjectReference NodeReference(const std::string& node_name);

inline constexpr std::string_view kEventNormal = "Normal";
inline constexpr std::string_view kEventWarning = "Warning";

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  // type: kEventNormal or kEventWarning. Never blocks on the network.
  virtual void Event(const ObjectReference& object, std::string_view type, std::string_view reason,
                     std::string_view message) = 0;
};
using EventRecorderPtr = std::shared_ptr<EventRecorder>;

class ApiEventRecorder final : public EventRecorder {
 public:
  struct Options {
    std::string component = "kubelet";  // source.component and reportingComponent
    std::string host;                   // source.host and reportingInstance: the node name
    size_t max_queued = 1000;           // events beyond this are dropped (and counted in logs)
    int max_attempts = 3;               // per event, on transport errors, 429 and 5xx
    std::chrono::milliseconds retry_delay{500};  // doubles per attempt
    size_t correlation_cache = 4096;             // recent events remembered for count PATCHes
  };
  ApiEventRecorder(ApiClientPtr api, Options options, const base::Clock* clock = nullptr);
  ~ApiEventRecorder() override;

  // Events recorded before Start() wait in the queue.
  void Start();
  // Ends the sender thread; queued events not sent yet are dropped (counted in the log).
  void Stop();
  // Waits until everything queued so far has been sent (or given up); false on timeout.
  bool Flush(std::chrono::milliseconds timeout);

  void Event(const ObjectReference& object, std::string_view type, std::string_view reason,
             std::string_view message) override;

  // The POST body for one event, field order as the kubelet's (k8s-samples 39).
  static std::string BuildEventBody(const ObjectReference& object, std::string_view type,
                                    std::string_view reason, std::string_view message,
                                    const std::string& event_name, const std::string& component,
                                    const std::string& host, base::WallTime timestamp);

 private:
  struct Pending {
    ObjectReference object;
    std::string type, reason, message;
    base::WallTime timestamp;
  };
  struct Sent {
    std::string name, namespace_;
    int32_t count = 1;
    base::WallTime first;
    std::list<std::string>::iterator lru;
  };
  void Run();
  void Send(const Pending& p);
  // Sends with retries; returns the last response (or error).
  Result<ApiResponse> DoWithRetry(std::string_view method, const std::string& path,
                                  const std::string& body, std::string_view content_type);
  void Remember(const std::string& key, Sent sent);

  ApiClientPtr api_;
  Options options_;
  const base::Clock* clock_;
  base::RealClock real_clock_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  bool busy_ = false;
  uint64_t dropped_ = 0;
  std::thread thread_;

  // Sender thread only.
  std::unordered_map<std::string, Sent> sent_;
  std::list<std::string> lru_;  // most recent first
};

}  // namespace agent
