#include "cgroups/v1/freezer_controller.h"

#include <cerrno>
#include <thread>

#include "base/strings.h"

namespace cgroups::v1 {

Result<std::string> FreezerController::State() const {
  auto text = dir_.Read("freezer.state");
  if (!text) return tl::unexpected(text.error());
  return std::string(base::Trim(*text));
}

Result<> FreezerController::WaitFor(const char* want, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    // Re-writing the target state is what the kernel docs recommend while FREEZING: it retries
    // the tasks that were busy (e.g. in a vfork) on the previous attempt.
    CUBELET_TRY(dir_.Write("freezer.state", want));
    auto state = State();
    if (!state) return tl::unexpected(state.error());
    if (*state == want) return {};
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string msg = std::string(want == std::string("FROZEN") ? "freeze" : "thaw") +
                        " cgroup '" + dir_.path() + "': freezer.state is still " + *state +
                        " after " + std::to_string(timeout.count()) + " ms";
      if (*state == "FROZEN") msg += " (a parent cgroup is frozen)";
      return base::Fail(msg, ETIMEDOUT);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

Result<> FreezerController::Freeze(std::chrono::milliseconds timeout) {
  auto r = WaitFor("FROZEN", timeout);
  if (!r) {
    // Never leave a cgroup half frozen behind a failure.
    (void)dir_.Write("freezer.state", "THAWED");
  }
  return r;
}

Result<> FreezerController::Thaw(std::chrono::milliseconds timeout) {
  return WaitFor("THAWED", timeout);
}

}  // namespace cgroups::v1
