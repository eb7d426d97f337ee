#pragma once
// One serialized worker per pod (the kubelet's podWorkers): every pod has its own thread that runs
// the sync function whenever the pod is marked dirty or a requested wake-up time passes, so a
// slow pod (image pull, 30 s grace period) never delays another. Sync calls for one pod never
// overlap. The sync function returns when it wants to run again (or nullopt for the periodic
// resync) and whether the worker is finished (the pod is gone).
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace agent {

struct SyncResult {
  bool done = false;  // pod fully cleaned up: the worker exits
  std::optional<std::chrono::steady_clock::duration> requeue_after;
};

class PodWorkers {
 public:
  using SyncFn = std::function<SyncResult(const std::string& uid)>;
  PodWorkers(SyncFn fn, std::chrono::steady_clock::duration resync);
  ~PodWorkers();

  // Marks the pod dirty, starting its worker if needed.
  void Update(const std::string& uid);
  void UpdateAll();
  bool Has(const std::string& uid) const;
  size_t Count() const;
  void Stop();

 private:
  struct Worker {
    std::thread thread;
    bool dirty = true;
    bool exited = false;
    std::chrono::steady_clock::time_point wake;
  };
  void Loop(const std::string& uid, Worker* w);
  void Reap();

  SyncFn fn_;
  std::chrono::steady_clock::duration resync_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::unique_ptr<Worker>> workers_;
};

}  // namespace agent
