#pragma once
// Network namespaces as RAII objects.
//
// A pod's namespace is pinned by a bind mount of a thread's /proc/self/task/TID/ns/net onto a
// plain file (e.g. /run/cubelet/netns/<sandbox id>), like `ip netns add`, so it outlives every
// process in it and cubelet restarts. Switching namespaces is per thread (setns only affects the
// calling thread), so NetnsGuard switches the calling thread for one scope and switches it back.
#include <sys/types.h>

#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace runtime::net {

using base::Result;

class NetnsGuard;

class NetNamespace {
 public:
  // Opens the namespace pinned at path (or any nsfs file, e.g. /proc/PID/ns/net).
  static Result<NetNamespace> Open(const std::string& path);
  // The calling thread's namespace.
  static Result<NetNamespace> Current();
  // Creates a new namespace pinned at path (parent directories are made). Idempotent: if path
  // already pins a namespace, that one is opened. The calling thread's namespace is unchanged
  // (the namespace is made by a short-lived thread).
  static Result<NetNamespace> Create(const std::string& path);
  // Unmounts and unlinks path; missing path or mount is not an error. The namespace itself goes
  // away when no process or fd holds it any more.
  static Result<> Remove(const std::string& path);
  // True if path is a mounted (pinned) network namespace.
  static bool IsPinned(const std::string& path);

  NetNamespace(NetNamespace&&) noexcept = default;
  NetNamespace& operator=(NetNamespace&&) noexcept = default;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  ino_t inode() const { return ino_; }
  bool SameAs(const NetNamespace& o) const { return ino_ == o.ino_ && dev_ == o.dev_; }
  // Switches the calling thread into this namespace until the guard is destroyed. No-op when the
  // thread already is in it.
  Result<NetnsGuard> Enter() const;

 private:
  NetNamespace(base::UniqueFd fd, std::string path, ino_t ino, dev_t dev)
      : fd_(std::move(fd)), path_(std::move(path)), ino_(ino), dev_(dev) {}
  static Result<NetNamespace> FromFd(base::UniqueFd fd, std::string path);

  base::UniqueFd fd_;
  std::string path_;
  ino_t ino_ = 0;
  dev_t dev_ = 0;
};

class NetnsGuard {
 public:
  NetnsGuard(NetnsGuard&& o) noexcept : saved_(std::move(o.saved_)) {}
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  NetnsGuard(const NetnsGuard&) = delete;
  // Switches back; a thread that cannot get back to its namespace would silently act on the wrong
  // network, so that aborts the process.
  ~NetnsGuard();

 private:
  friend class NetNamespace;
  explicit NetnsGuard(base::UniqueFd saved) : saved_(std::move(saved)) {}
  base::UniqueFd saved_;  // empty when no switch was needed
};

}  // namespace runtime::net
