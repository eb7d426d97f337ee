#include "agent/pod_workers.h"

#include <vector>

namespace agent {

PodWorkers::PodWorkers(SyncFn fn, std::chrono::steady_clock::duration resync)
    : fn_(std::move(fn)), resync_(resync) {}

PodWorkers::~PodWorkers() { Stop(); }

void PodWorkers::Update(const std::string& uid) {
  std::unique_lock lk(mu_);
  if (stop_) return;
  auto it = workers_.find(uid);
  if (it != workers_.end() && !it->second->exited) {
    it->second->dirty = true;
    cv_.notify_all();
    return;
  }
  if (it != workers_.end()) {  // finished worker: join it before starting a new one
    auto old = std::move(it->second);
    workers_.erase(it);
    lk.unlock();
    if (old->thread.joinable()) old->thread.join();
    lk.lock();
    if (stop_) return;
  }
  auto w = std::make_unique<Worker>();
  Worker* raw = w.get();
  workers_[uid] = std::move(w);
  raw->thread = std::thread([this, uid, raw] { Loop(uid, raw); });
  Reap();
}

void PodWorkers::UpdateAll() {
  std::lock_guard lk(mu_);
  for (auto& [uid, w] : workers_) w->dirty = true;
  cv_.notify_all();
}

bool PodWorkers::Has(const std::string& uid) const {
  std::lock_guard lk(mu_);
  auto it = workers_.find(uid);
  return it != workers_.end() && !it->second->exited;
}

size_t PodWorkers::Count() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& [uid, w] : workers_) n += w->exited ? 0 : 1;
  return n;
}

void PodWorkers::Reap() {
  // Called with mu_ held: join workers that exited (their threads are finishing or done).
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second->exited && it->second->thread.joinable() &&
        it->second->thread.get_id() != std::this_thread::get_id()) {
      // A thread marks itself exited as its last action under the lock, so join is immediate.
      it->second->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void PodWorkers::Loop(const std::string& uid, Worker* w) {
  std::unique_lock lk(mu_);
  while (!stop_) {
    if (!w->dirty) {
      cv_.wait_until(lk, w->wake, [&] { return stop_ || w->dirty; });
      if (stop_) break;
      if (!w->dirty && std::chrono::steady_clock::now() < w->wake) continue;
    }
    w->dirty = false;
    lk.unlock();
    SyncResult r = fn_(uid);
    lk.lock();
    if (r.done && !w->dirty) {
      w->exited = true;
      return;
    }
    w->wake = std::chrono::steady_clock::now() + (r.requeue_after ? *r.requeue_after : resync_);
  }
  w->exited = true;
}

void PodWorkers::Stop() {
  std::vector<std::unique_ptr<Worker>> all;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    cv_.notify_all();
    for (auto& [uid, w] : workers_) all.push_back(std::move(w));
    workers_.clear();
  }
  for (auto& w : all) {
    if (w->thread.joinable()) w->thread.join();
  }
}

}  // namespace agent
