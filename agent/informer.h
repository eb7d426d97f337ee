#pragma once
// List+watch of one resource into a local cache (client-go reflector + indexer, reduced):
// LIST (resourceVersion=0 first, "" after a 410), then WATCH from the list's resourceVersion with
// bookmarks; reconnects from the last seen resourceVersion (bookmarks included); an expired
// resourceVersion (HTTP 410 or an in-stream ERROR with code 410) triggers a relist whose result is
// delivered as a full replace (adds, updates and deletes against the cache). Transport errors back
// off exponentially (1 s doubling to 30 s) and are logged with the cause.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/api_client.h"

namespace agent {

using Json = nlohmann::json;

struct InformerHandlers {
  std::function<void(const Json& obj)> on_add;
  std::function<void(const Json& old_obj, const Json& new_obj)> on_update;
  std::function<void(const Json& last)> on_delete;
  std::function<void()> on_synced;  // after the first full list has been delivered
};

struct InformerOptions {
  std::string resource_path;   // "/api/v1/pods", "/apis/discovery.k8s.io/v1/endpointslices"
  std::string field_selector;  // "spec.nodeName=node1"
  std::string label_selector;
  std::string name;            // for logs ("pods")
  int watch_timeout_seconds = 0;  // 0 = random in [300, 600) like client-go
};

class Informer {
 public:
  Informer(ApiClientPtr client, InformerOptions opts, InformerHandlers handlers);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void Start();
  void Stop();

  bool HasSynced() const { return synced_.load(); }
  // Copies of cached objects. Key: "namespace/name" (or "name" for cluster-scoped).
  std::vector<Json> List() const;
  bool Get(const std::string& key, Json* out) const;
  std::string LastResourceVersion() const;

  static std::string KeyOf(const Json& obj);
  // Pure: the query string for a list or watch request (exposed for tests).
  static std::string BuildQuery(const InformerOptions& o, bool watch, const std::string& rv,
                                int timeout_seconds);

 private:
  enum class WatchResult { kReconnect, kRelist, kStop };
  void Run();
  bool ListAndReplace(bool first);
  WatchResult WatchOnce();
  void HandleEvent(const std::string& type, Json obj);
  void Backoff();
  void SleepFor(std::chrono::milliseconds d);

  ApiClientPtr client_;
  InformerOptions opts_;
  InformerHandlers handlers_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  StreamCancel cancel_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Json> store_;
  std::string rv_;
  bool rv_expired_ = false;
  std::chrono::milliseconds backoff_{0};
};

}  // namespace agent
