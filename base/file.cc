#include "base/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"

namespace base {

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Errno("open " + path);
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

static Result<> WriteAll(int fd, std::string_view data, const std::string& path) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write " + path);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return {};
}

Result<> WriteFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Errno("open " + path);
  return WriteAll(fd.get(), data, path);
}

Result<> WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) return Errno("open " + tmp);
    auto r = WriteAll(fd.get(), data, tmp);
    if (!r) {
      ::unlink(tmp.c_str());
      return r;
    }
    if (::fsync(fd.get()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return Errno("fsync " + tmp, e);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Errno("rename " + tmp + " to " + path, e);
  }
  return {};
}

Result<> MkdirAll(const std::string& path, int mode) {
  if (path.empty()) return {};
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t next = path.find('/', i);
    if (next == std::string::npos) next = path.size();
    cur = path.substr(0, next);
    if (!cur.empty() && ::mkdir(cur.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
      return Errno("mkdir " + cur);
    }
    i = next + 1;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Errno("stat " + path);
  if (!S_ISDIR(st.st_mode)) return Fail("mkdir " + path + ": exists and is not a directory", ENOTDIR);
  return {};
}

static Result<> RemoveAt(int dirfd, const char* name, dev_t dev, const std::string& shown) {
  struct stat st;
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return Errno("stat " + shown);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) return Fail("remove " + shown + ": is a mount point", EBUSY);
    UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Errno("open " + shown);
    DIR* d = ::fdopendir(::dup(fd.get()));
    if (!d) return Errno("opendir " + shown);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& n : names) {
      auto r = RemoveAt(fd.get(), n.c_str(), dev, shown + "/" + n);
      if (!r) return r;
    }
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return Errno("rmdir " + shown);
  } else {
    if (::unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) return Errno("unlink " + shown);
  }
  return {};
}

Result<> RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return Errno("stat " + path);
  }
  return RemoveAt(AT_FDCWD, path.c_str(), st.st_dev, path);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  return out;
}

bool SpreadSubdirectories(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int flags = 0;
  if (!fd || ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) return false;
  if (flags & FS_TOPDIR_FL) return true;
  flags |= FS_TOPDIR_FL;
  return ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) == 0;
}

namespace {

void AddUsage(int dirfd, dev_t dev, std::set<std::pair<dev_t, ino_t>>* links, DiskUsage* u) {
  DIR* d = fdopendir(dirfd);
  if (!d) {
    close(dirfd);
    return;
  }
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (st.st_dev != dev) continue;  // a mount point
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !links->insert({st.st_dev, st.st_ino}).second) {
      continue;  // another name of a file already counted
    }
    u->bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    u->inodes += 1;
    if (S_ISDIR(st.st_mode)) {
      int fd = openat(::dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) AddUsage(fd, dev, links, u);
    }
  }
  closedir(d);
}

}  // namespace

DiskUsage DirDiskUsage(const std::string& dir) {
  DiskUsage u;
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return u;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return u;
  }
  u.bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  u.inodes = 1;
  std::set<std::pair<dev_t, ino_t>> links;
  AddUsage(fd, st.st_dev, &links, &u);
  return u;
}

}  // namespace base
