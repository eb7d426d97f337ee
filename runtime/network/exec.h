#pragma once
// Running a helper program (iptables-restore, CNI plugins): posix_spawn, stdin fed from memory,
// stdout and stderr collected. Not for hot paths: the per-pod path of BridgeNetwork runs none.
#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace runtime::net {

using base::Result;

struct ExecSpec {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up in PATH
  std::string stdin_data;
  // Environment; empty: inherit cubelet's. With env set, only these variables are passed.
  std::map<std::string, std::string> env;
  bool inherit_env = true;    // with env set: add these on top of cubelet's environment
  bool merge_stderr = false;  // stderr into stdout (one stream, in order)
};

struct ExecResult {
  int status = 0;  // exit code, or 128 + signal
  std::string out;
  std::string err;
};

// Fails only if the program cannot be started; a non-zero exit is a result.
Result<ExecResult> Exec(const ExecSpec& spec);

// Shorthand: stdout+stderr merged into *output; returns the exit status.
Result<int> RunProgram(const std::vector<std::string>& argv, const std::string& stdin_data,
                       std::string* output);

}  // namespace runtime::net
