#pragma once
#include <utility>

namespace base {

// Runs a callable when the scope ends unless dismissed.
template <class F>
class ScopeGuard {
 public:
  explicit ScopeGuard(F f) noexcept : f_(std::move(f)) {}
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ~ScopeGuard() {
    if (active_) f_();
  }
  void Dismiss() noexcept { active_ = false; }

 private:
  F f_;
  bool active_ = true;
};

template <class F>
ScopeGuard<F> Defer(F f) {
  return ScopeGuard<F>(std::move(f));
}

}  // namespace base
