#include "runtime/monitor/lookpath.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monitor {
namespace {

// 0 when executable regular file, else errno-like code (EACCES for a non-executable file).
int CheckExecutable(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if ((st.st_mode & 0111) == 0) return EACCES;
  return 0;
}

}  // namespace

std::string PathFromEnv(const std::vector<std::string>& env) {
  for (auto it = env.rbegin(); it != env.rend(); ++it) {
    if (it->rfind("PATH=", 0) == 0) return it->substr(5);
  }
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

bool LookPath(const std::string& root, const std::string& file, const std::string& path_env,
              std::string* resolved, std::string* error) {
  if (file.empty()) {
    *error = "exec: no command";
    return false;
  }
  if (file.find('/') != std::string::npos) {
    int err = CheckExecutable(root + file);
    if (err == 0) {
      *resolved = file;
      return true;
    }
    if (err == ENOENT || err == ENOTDIR) {
      *error = "exec: \"" + file + "\": stat " + file + ": no such file or directory";
    } else if (err == EACCES || err == EISDIR) {
      *error = "exec: \"" + file + "\": permission denied";
    } else {
      *error = "exec: \"" + file + "\": stat " + file + ": " + strerror(err);
    }
    return false;
  }
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t colon = path_env.find(':', start);
    std::string dir = path_env.substr(start, colon == std::string::npos ? std::string::npos
                                                                         : colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + file;
    std::string on_host = candidate[0] == '/' ? root + candidate : candidate;
    if (CheckExecutable(on_host) == 0) {
      *resolved = candidate;
      return true;
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  *error = "exec: \"" + file + "\": executable file not found in $PATH";
  return false;
}

}  // namespace monitor
