#pragma once
// In-memory object store of the test API server: one global, strictly increasing
// resourceVersion (like etcd's revision), an event history for watches, and watchers.
//
// Callers take Store::Lock() around a whole read-modify-write; the methods below expect it to
// be held (the watchers' queues have their own locks, so a watch stream never blocks writers).
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tests/apiserver/json.h"

namespace apiserver {

struct WatchEvent {
  int64_t rv = 0;
  std::string resource;   // "pods", "leases", ...
  std::string type;       // ADDED, MODIFIED, DELETED
  Json object;            // the new object (or the deleted one, with the delete's RV)
  Json old;               // previous object for MODIFIED/DELETED (null for ADDED)
};

// What a watch stream receives: events already filtered and typed for that watcher.
class Watcher {
 public:
  using Filter = std::function<bool(const Json&)>;
  Watcher(std::string resource, std::string ns, Filter filter)
      : resource_(std::move(resource)), ns_(std::move(ns)), filter_(std::move(filter)) {}

  // Called by the store with its lock held.
  void Offer(const WatchEvent& e);
  // Waits up to `timeout` for an event; nullopt on timeout or when closed.
  std::optional<std::pair<std::string, Json>> Next(std::chrono::milliseconds timeout);
  bool HasPending();
  void Close();
  bool closed();
  void Push(std::string type, Json object);

 private:
  std::string resource_;
  std::string ns_;
  Filter filter_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, Json>> queue_;
  bool closed_ = false;
};

class Store {
 public:
  explicit Store(size_t history_limit = 20000) : history_limit_(history_limit) {}

  std::unique_lock<std::recursive_mutex> Lock() { return std::unique_lock(mu_); }

  int64_t CurrentRv() const { return rv_; }
  // Oldest RV from which a watch can still resume (events after it are all kept).
  int64_t CompactedRv() const { return compacted_rv_; }

  const Json* Get(const std::string& resource, const std::string& ns, const std::string& name);
  // All objects of `resource` (in namespace `ns` unless empty), in key order.
  std::vector<const Json*> List(const std::string& resource, const std::string& ns);

  // Each write assigns the next RV into metadata.resourceVersion, records an event and feeds
  // the watchers. They return the stored object.
  Json Create(const std::string& resource, Json obj);
  Json Update(const std::string& resource, Json obj);
  Json Delete(const std::string& resource, const std::string& ns, const std::string& name);

  // Registers a watcher and replays history after `from_rv` (events > from_rv).
  // Returns false if from_rv is older than the kept history (410 Gone).
  bool AddWatcher(const std::shared_ptr<Watcher>& w, const std::string& resource,
                  int64_t from_rv);
  void RemoveWatcher(const std::shared_ptr<Watcher>& w);

  // Drops the whole event history (test hook to provoke 410 Gone).
  void Compact();

  // Called after every write (with the lock held) so controllers can wake up.
  void SetOnChange(std::function<void(const WatchEvent&)> f) { on_change_ = std::move(f); }

 private:
  void Record(WatchEvent e);
  static std::string Key(const std::string& ns, const std::string& name) {
    return ns + "/" + name;
  }

  std::recursive_mutex mu_;
  int64_t rv_ = 1000;
  int64_t compacted_rv_ = 1000;
  size_t history_limit_;
  std::map<std::string, std::map<std::string, Json>> objects_;
  std::deque<WatchEvent> history_;
  std::vector<std::pair<std::string, std::shared_ptr<Watcher>>> watchers_;
  std::function<void(const WatchEvent&)> on_change_;
};

}  // namespace apiserver
