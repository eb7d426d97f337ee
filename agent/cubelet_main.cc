// cubelet: the node agent daemon. Runs until SIGTERM/SIGINT; containers keep running across
// restarts (systemd KillMode=process), and are re-adopted at the next start.
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>

#include "agent/cubelet_app.h"
#include "agent/cubelet_flags.h"
#include "base/log.h"

int main(int argc, char** argv) {
  agent::CubeletFlags flags = agent::ParseFlags(argc, argv);
  base::log::Level level;
  if (flags.v >= 0) base::log::ParseLevel(std::to_string(flags.v), &level);
  else if (!base::log::ParseLevel(flags.log_level, &level)) {
    fprintf(stderr, "cubelet: unknown --log-level %s (debug, info, warn, error)\n", flags.log_level.c_str());
    return 2;
  }
  base::log::SetLevel(level);

  // Signals go through a self-pipe rather than a blocked mask: a blocked mask is inherited by
  // every process cubelet starts (monitors, containers), which would then ignore SIGTERM.
  static int sig_pipe[2];
  if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
    perror("pipe2");
    return 1;
  }
  struct sigaction sa = {};
  sa.sa_handler = [](int s) {
    unsigned char b = static_cast<unsigned char>(s);
    (void)!write(sig_pipe[1], &b, 1);
  };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  agent::CubeletApp app(flags);
  auto started = app.Start();
  if (!started) {
    base::log::Error("cubelet failed to start", {{"err", started.error().message}});
    app.Stop();
    return 1;
  }
  unsigned char sig = 0;
  while (read(sig_pipe[0], &sig, 1) < 0 && errno == EINTR) {
  }
  base::log::Info("shutting down", {{"signal", sig}});
  app.Stop();
  return 0;
}
