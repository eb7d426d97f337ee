#pragma once
// A task run on a thread of its own: once at Start(), then every interval until Stop() (which
// wakes the wait at once and joins). For the kubelet's periodic managers (log rotation, image GC).
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace agent {

class Periodic {
 public:
  Periodic() = default;
  ~Periodic() { Stop(); }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  // No-op when already running.
  void Start(std::chrono::milliseconds interval, std::function<void()> task) {
    std::lock_guard lk(mu_);
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = std::thread([this, interval, task = std::move(task)] {
      std::unique_lock lk(mu_);
      while (!stop_) {
        lk.unlock();
        task();
        lk.lock();
        cv_.wait_for(lk, interval, [this] { return stop_; });
      }
    });
  }

  void Stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace agent
