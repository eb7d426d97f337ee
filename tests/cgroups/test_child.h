#pragma once
// A forked child for cgroup tests: it waits on a pipe until Release(), so the test can move it
// into a cgroup before it does anything, then runs `body` (or execs) and exits with its result.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace cgtest {

class TestChild {
 public:
  explicit TestChild(std::function<int()> body) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(p[1]);
      char c;
      if (read(p[0], &c, 1) != 1) _exit(120);
      close(p[0]);
      _exit(body());
    }
    close(p[0]);
    go_ = p[1];
  }
  // execv(argv[0], argv) once released; exit 127 if exec fails.
  static std::function<int()> Exec(std::vector<std::string> argv) {
    return [argv] {
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execv(a[0], a.data());
      return 127;
    };
  }
  TestChild(const TestChild&) = delete;
  TestChild& operator=(const TestChild&) = delete;
  ~TestChild() {
    if (go_ >= 0) close(go_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
    }
  }

  pid_t pid() const { return pid_; }
  void Release() {
    if (go_ < 0) return;
    char c = 'g';
    (void)!write(go_, &c, 1);
    close(go_);
    go_ = -1;
  }
  // Exit code, or 128+signal; nullopt when still running after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int st = 0;
      pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool reaped_ = false;
};

}  // namespace cgtest
