#pragma once
// A few threads kept for short background tasks of the runtime (the detached rootfs mount of a
// CreateContainer): handing a task to a waiting thread costs a wake-up, where std::async made
// (and tore down) a thread per container, 0.1-1 ms on small VMs. Threads are made on demand,
// up to `max_threads`; beyond that tasks wait in order. The destructor runs what is queued and
// joins the threads.
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace runtime {

class TaskRunner {
 public:
  explicit TaskRunner(size_t max_threads) : max_(max_threads > 0 ? max_threads : 1) {}
  ~TaskRunner() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  // Runs `fn` on one of the threads; its result (or exception) through the future.
  template <typename F>
  auto Run(F fn) -> std::future<decltype(fn())> {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
    auto fut = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back([task] { (*task)(); });
      if (idle_ < tasks_.size() && threads_.size() < max_) {
        threads_.emplace_back([this] { Loop(); });
      }
    }
    cv_.notify_one();
    return fut;
  }

  size_t threads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_.size();
  }
  // Threads waiting for a task (a thread that has just delivered a result is not yet one).
  size_t idle() const {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      ++idle_;
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      --idle_;
      if (tasks_.empty()) return;  // stopping, nothing left
      auto t = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      t();
      lock.lock();
    }
  }

  const size_t max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace runtime
