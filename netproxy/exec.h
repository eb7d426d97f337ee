#pragma once
// Runs a helper program (iptables-restore, iptables-save) with stdin fed from memory and
// stdout/stderr captured, without a shell. Used once per rules commit, never per rule.
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace netproxy {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

// argv[0] is looked up in PATH. The child starts with an empty signal mask and default
// dispositions. It is killed (SIGKILL) after `timeout`. An error is returned only when the
// program could not be run at all; a non-zero exit is a CommandResult.
base::Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                       std::string_view input = {},
                                       std::chrono::milliseconds timeout = std::chrono::minutes(2));

}  // namespace netproxy
