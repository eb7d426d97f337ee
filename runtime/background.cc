#include "runtime/background.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace runtime {

BackgroundWaker::BackgroundWaker()
    : event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      timer_(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) {}

void BackgroundWaker::WakeNow() {
  uint64_t one = 1;
  if (write(event_.get(), &one, sizeof one) < 0) {
    // Only EAGAIN (the counter is full: a wake-up is pending anyway) or no eventfd at all.
  }
}

void BackgroundWaker::WakeAfter(std::chrono::nanoseconds delay) {
  if (!timer_) return WakeNow();
  itimerspec cur{};
  if (timerfd_gettime(timer_.get(), &cur) == 0 &&
      (cur.it_value.tv_sec != 0 || cur.it_value.tv_nsec != 0)) {
    return;  // armed
  }
  itimerspec t{};
  auto ns = std::max<int64_t>(delay.count(), 1);
  t.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  t.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  if (timerfd_settime(timer_.get(), 0, &t, nullptr) != 0) WakeNow();
}

void BackgroundWaker::Wait() {
  pollfd p[2] = {{event_.get(), POLLIN, 0}, {timer_.get(), POLLIN, 0}};
  while (poll(p, timer_ ? 2 : 1, -1) < 0 && errno == EINTR) {
  }
  uint64_t n;
  if (read(event_.get(), &n, sizeof n) < 0) {
  }
  if (timer_ && read(timer_.get(), &n, sizeof n) < 0) {
  }
}

SchedPolicy CurrentSchedPolicy() {
  SchedPolicy p;
  int policy = sched_getscheduler(0);
  if (policy >= 0) p.policy = policy & ~SCHED_RESET_ON_FORK;
  sched_param sp{};
  if (sched_getparam(0, &sp) == 0) p.priority = sp.sched_priority;
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, 0);  // per thread on Linux
  if (errno == 0) p.nice = nice;
  return p;
}

bool EnterBackground() {
  return setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kBackgroundNice) == 0;
}

bool RestoreSchedPolicy(pid_t tid, const SchedPolicy& p) {
  sched_param sp{};
  sp.sched_priority = p.priority;
  if (sched_setscheduler(tid, p.policy, &sp) != 0) return false;
  return setpriority(PRIO_PROCESS, static_cast<id_t>(tid), p.nice) == 0;
}

}  // namespace runtime
