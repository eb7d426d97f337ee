#pragma once
// A cgroup directory held open as a directory fd. Every control file is opened relative to it
// (openat), so the path is resolved once and a rename/replace of an ancestor cannot redirect later
// writes, and every error names the file, the value and the cgroup:
//   write cpu.cfs_quota_us=20000 to cgroup '/sys/fs/cgroup/cpu/kubepods/pod1': EINVAL (...)
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace cgroups {

using base::Result;

// "EINVAL (Invalid argument)": the errno name is what people grep the kernel source for.
std::string ErrnoText(int err);
// Error{err, "context: EINVAL (Invalid argument)"}.
tl::unexpected<base::Error> SysFail(std::string_view context, int err);

class CgroupDir {
 public:
  CgroupDir() = default;
  CgroupDir(CgroupDir&&) noexcept = default;
  CgroupDir& operator=(CgroupDir&&) noexcept = default;

  // Opens an existing cgroup directory; ENOENT when it does not exist.
  static Result<CgroupDir> Open(const std::string& abs_path);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

  // Whole file content (control files are small; one read() per page).
  Result<std::string> Read(std::string_view file) const;
  // Trimmed content parsed as an unsigned/signed integer.
  Result<uint64_t> ReadU64(std::string_view file) const;
  Result<int64_t> ReadI64(std::string_view file) const;
  // One write() of the whole value, as cgroupfs requires.
  Result<> Write(std::string_view file, std::string_view value) const;
  bool Has(std::string_view file) const;

  // cgroup.procs of this cgroup only (not descendants).
  Result<std::vector<pid_t>> Procs() const;
  Result<> AddProcess(pid_t pid) const;
  // Names of child cgroups (subdirectories).
  Result<std::vector<std::string>> Children() const;
  Result<CgroupDir> OpenChild(std::string_view name) const;
  // mkdir of one child; returns true when it was created, false when it already existed.
  Result<bool> MakeChild(std::string_view name) const;

 private:
  CgroupDir(base::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  base::UniqueFd fd_;
  std::string path_;
};

// Splits a cgroup path relative to a root into components; "" and "/" give no components.
// Rejects "." and ".." components so a path can never leave the driver's root.
Result<std::vector<std::string>> SplitCgroupPath(std::string_view path);
// Joins "root" and "path" (both relative, either may be empty) into one clean relative path.
Result<std::string> JoinCgroupPath(std::string_view root, std::string_view path);

// Pids of the cgroup at abs_path and all its descendants; a missing cgroup gives an empty list.
Result<std::vector<pid_t>> ProcsRecursive(const std::string& abs_path);

// rmdir of abs_path and all descendants (children first). A missing directory is success. EBUSY
// (a process still exiting, or a css still being released) is retried until busy_timeout passes.
Result<> RemoveRecursive(const std::string& abs_path, std::chrono::milliseconds busy_timeout);

}  // namespace cgroups
