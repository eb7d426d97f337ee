#pragma once
// exec.LookPath as runc applies it inside the container after pivot_root.
#include <string>
#include <vector>

namespace monitor {

// Resolves `file` against `path_env` (colon-separated; empty entries mean "."), looking at
// `root` + dir + "/" + file (root "" inside the container). On failure *error is the message
// runc gives, e.g. `exec: "foo": executable file not found in $PATH`.
bool LookPath(const std::string& root, const std::string& file, const std::string& path_env,
              std::string* resolved, std::string* error);

// The PATH value from an env list ("PATH=..."), or the default when absent.
std::string PathFromEnv(const std::vector<std::string>& env);

}  // namespace monitor
