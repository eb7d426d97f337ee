#pragma once
// `cubectl exec`: the client side of the kubelet API's /exec over cubelet's debug socket. It
// speaks the same WebSocket channel protocol (v5.channel.k8s.io) as kubectl through the API
// server, so there is one server code path and the half-close of stdin and the exit code come
// with the protocol instead of a second, home-made one.
#include <string>
#include <vector>

namespace agent::cubectl {

struct ExecArgs {
  std::string socket;  // the debug socket
  std::string ns, pod, container;
  std::vector<std::string> command;
  bool stdin = false;  // -i: copy our stdin to the command, then half-close it
  bool tty = false;    // -t: the command gets a terminal; ours goes raw and sends its size
};

// Runs the command; returns the exit code for cubectl: the command's, or 1 after printing
// "error: ..." on stderr when it could not run.
int RunExec(const ExecArgs& args);

}  // namespace agent::cubectl
