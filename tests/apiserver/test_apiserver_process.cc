#include "tests/apiserver/test_apiserver_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

extern char** environ;

namespace testsupport {

base::Result<> TestApiServer::Start(const TestApiServerOptions& o) {
  Stop();
  std::string binary = o.binary.empty() ? CUBELET_TEST_APISERVER_BIN : o.binary;
  std::vector<std::string> args = {binary, "--data-dir", o.data_dir};
  for (const auto& l : o.listen) args.insert(args.end(), {"--listen", l});
  for (const auto& n : o.nodes) args.insert(args.end(), {"--node", n});
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return base::Errno("pipe for test apiserver");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    pid_ = -1;
    return base::Errno("spawn " + binary, rc);
  }
  dir_ = o.data_dir;
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  std::istringstream line(out.substr(0, out.find('\n')));
  std::string word;
  line >> word;
  if (word != "ready") {
    Stop();
    return base::Fail("test apiserver " + binary + " did not become ready (output: '" + out +
                      "')");
  }
  urls_.clear();
  while (line >> word) urls_.push_back(word);
  return {};
}

void TestApiServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace testsupport
