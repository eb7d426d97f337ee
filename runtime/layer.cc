#include "runtime/layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

namespace runtime {
namespace {

int OpenInRoot(int root_fd, const std::string& rel, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, root_fd, rel.empty() ? "." : rel.c_str(), &how,
                                  sizeof how));
}

// Opens (creating as needed) the directory `rel` inside the root.
Result<base::UniqueFd> OpenDirInRoot(int root_fd, const std::string& rel) {
  int fd = OpenInRoot(root_fd, rel, O_DIRECTORY | O_RDONLY);
  if (fd >= 0) return base::UniqueFd(fd);
  if (errno != ENOENT) return base::Errno("open directory '" + rel + "' in the layer root");
  size_t slash = rel.rfind('/');
  std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
  std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  auto p = OpenDirInRoot(root_fd, parent);
  if (!p) return p;
  if (mkdirat(p->get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
    return base::Errno("mkdir '" + rel + "'");
  }
  fd = OpenInRoot(root_fd, rel, O_DIRECTORY | O_RDONLY);
  if (fd < 0) return base::Errno("open directory '" + rel + "' in the layer root");
  return base::UniqueFd(fd);
}

void SplitParent(const std::string& rel, std::string* parent, std::string* name) {
  size_t slash = rel.rfind('/');
  *parent = slash == std::string::npos ? "" : rel.substr(0, slash);
  *name = slash == std::string::npos ? rel : rel.substr(slash + 1);
}

Result<> ClearDir(int dirfd, const std::string& rel, const std::set<std::string>& keep) {
  int dup = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return base::Errno("open '" + rel + "'");
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    return base::Errno("opendir '" + rel + "'");
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (keep.count(rel.empty() ? n : rel + "/" + n)) continue;
    names.push_back(n);
  }
  closedir(d);
  for (const auto& n : names) CUBELET_TRY(RemoveAt(dirfd, n));
  return {};
}

}  // namespace

Result<std::string> CleanLayerPath(const std::string& path) {
  std::vector<std::string> out;
  for (const auto& c : base::Split(path, '/', true)) {
    if (c == ".") continue;
    if (c == "..") return base::Fail("path '" + path + "' escapes the root");
    out.push_back(c);
  }
  return base::Join(out, "/");
}

Result<> RemoveAt(int dirfd, const std::string& name) {
  if (unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
  if (errno != EISDIR && errno != EPERM) return base::Errno("remove '" + name + "'");
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return base::Errno("open '" + name + "' for removal");
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return base::Errno("opendir '" + name + "'");
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  for (const auto& n : names) {
    auto r = RemoveAt(::dirfd(d), n);
    if (!r) {
      closedir(d);
      return tl::unexpected(r.error().Wrap("remove '" + name + "'"));
    }
  }
  closedir(d);
  if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return base::Errno("rmdir '" + name + "'");
  }
  return {};
}

Result<LayerStats> ApplyLayer(const std::string& root, TarReader& tar) {
  base::UniqueFd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return base::Errno("open layer root '" + root + "'");
  LayerStats stats;
  std::set<std::string> created;  // paths of this layer: an opaque whiteout keeps them
  std::vector<std::pair<std::string, TarEntry>> dirs;  // modes/times fixed at the end
  std::vector<char> buf(128 * 1024);
  TarEntry e;
  while (true) {
    auto more = tar.Next(&e);
    if (!more) return tl::unexpected(more.error());
    if (!*more) break;
    ++stats.entries;
    auto clean = CleanLayerPath(e.path);
    if (!clean) return tl::unexpected(clean.error());
    std::string rel = *clean;
    if (rel.empty()) continue;  // the root itself
    std::string parent, name;
    SplitParent(rel, &parent, &name);
    auto pfd = OpenDirInRoot(root_fd.get(), parent);
    if (!pfd) return tl::unexpected(pfd.error().Wrap("layer entry '" + e.path + "'"));
    int dfd = pfd->get();

    if (base::StartsWith(name, ".wh.")) {
      if (name == ".wh..wh..opq") {
        CUBELET_TRY_CTX(ClearDir(dfd, parent, created), "opaque whiteout '" + e.path + "'");
      } else {
        CUBELET_TRY_CTX(RemoveAt(dfd, name.substr(4)), "whiteout '" + e.path + "'");
      }
      continue;
    }
    created.insert(rel);
    struct stat st;
    bool exists = fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !(S_ISDIR(st.st_mode) && e.type == TarEntry::Type::kDir)) {
      CUBELET_TRY_CTX(RemoveAt(dfd, name), "replace '" + rel + "'");
      exists = false;
    }
    const uid_t uid = static_cast<uid_t>(e.uid);
    const gid_t gid = static_cast<gid_t>(e.gid);
    switch (e.type) {
      case TarEntry::Type::kDir:
        if (!exists && mkdirat(dfd, name.c_str(), 0755) != 0) return base::Errno("mkdir '" + rel + "'");
        dirs.emplace_back(rel, e);
        break;
      case TarEntry::Type::kFile:
      case TarEntry::Type::kOther: {
        base::UniqueFd f(openat(dfd, name.c_str(),
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!f) return base::Errno("create '" + rel + "'");
        while (true) {
          auto n = tar.Read(buf.data(), buf.size());
          if (!n) return tl::unexpected(n.error().Wrap("read '" + rel + "'"));
          if (*n == 0) break;
          size_t off = 0;
          while (off < *n) {
            ssize_t w = write(f.get(), buf.data() + off, *n - off);
            if (w < 0) return base::Errno("write '" + rel + "'");
            off += static_cast<size_t>(w);
          }
          stats.bytes += *n;
        }
        if (fchown(f.get(), uid, gid) != 0) return base::Errno("chown '" + rel + "'");
        if (fchmod(f.get(), e.mode) != 0) return base::Errno("chmod '" + rel + "'");
        struct timespec ts[2] = {{e.mtime, 0}, {e.mtime, 0}};
        futimens(f.get(), ts);
        break;
      }
      case TarEntry::Type::kSymlink:
        if (symlinkat(e.linkname.c_str(), dfd, name.c_str()) != 0) {
          return base::Errno("symlink '" + rel + "'");
        }
        fchownat(dfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
        break;
      case TarEntry::Type::kHardlink: {
        auto target = CleanLayerPath(e.linkname);
        if (!target) return tl::unexpected(target.error().Wrap("hardlink '" + rel + "'"));
        std::string tparent, tname;
        SplitParent(*target, &tparent, &tname);
        base::UniqueFd tfd(OpenInRoot(root_fd.get(), tparent, O_DIRECTORY | O_RDONLY));
        if (!tfd) return base::Errno("hardlink '" + rel + "' to '" + e.linkname + "'");
        if (linkat(tfd.get(), tname.c_str(), dfd, name.c_str(), 0) != 0) {
          return base::Errno("hardlink '" + rel + "' to '" + e.linkname + "'");
        }
        break;
      }
      case TarEntry::Type::kFifo:
        if (mknodat(dfd, name.c_str(), S_IFIFO | e.mode, 0) != 0) return base::Errno("mkfifo '" + rel + "'");
        fchownat(dfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
        break;
      case TarEntry::Type::kCharDev:
      case TarEntry::Type::kBlockDev:
        // Images do not get to create device nodes; containers get a fixed /dev.
        ++stats.skipped_devices;
        created.erase(rel);
        break;
    }
  }
  // Directory metadata last: creating children would change mtimes, and a read-only mode
  // would stop later entries from being written.
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    int fd = OpenInRoot(root_fd.get(), it->first, O_DIRECTORY | O_RDONLY | O_NOFOLLOW);
    if (fd < 0) continue;  // removed by a later whiteout
    base::UniqueFd dfd(fd);
    if (fchown(fd, static_cast<uid_t>(it->second.uid), static_cast<gid_t>(it->second.gid)) != 0 ||
        fchmod(fd, it->second.mode) != 0) {
      return base::Errno("set owner and mode of '" + it->first + "'");
    }
    struct timespec ts[2] = {{it->second.mtime, 0}, {it->second.mtime, 0}};
    futimens(fd, ts);
  }
  if (stats.skipped_devices) {
    base::log::Warn("device nodes in an image layer were skipped",
                    {{"root", root}, {"count", stats.skipped_devices}});
  }
  return stats;
}

namespace {

Result<> CopyAt(int from_dir, int to_dir, const std::string& name, const std::string& shown) {
  struct stat st;
  if (fstatat(from_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return base::Errno("stat '" + shown + "'");
  }
  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(to_dir, name.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) {
      return base::Errno("mkdir '" + shown + "'");
    }
    base::UniqueFd src(openat(from_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    base::UniqueFd dst(openat(to_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!src || !dst) return base::Errno("open directory '" + shown + "'");
    int dupfd = dup(src.get());
    DIR* d = fdopendir(dupfd);
    if (!d) {
      close(dupfd);
      return base::Errno("opendir '" + shown + "'");
    }
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    for (const auto& n : names) CUBELET_TRY(CopyAt(src.get(), dst.get(), n, shown + "/" + n));
    fchown(dst.get(), st.st_uid, st.st_gid);
    fchmod(dst.get(), st.st_mode & 07777);
    return {};
  }
  if (S_ISLNK(st.st_mode)) {
    std::vector<char> target(static_cast<size_t>(st.st_size) + 1);
    ssize_t n = readlinkat(from_dir, name.c_str(), target.data(), target.size());
    if (n < 0) return base::Errno("readlink '" + shown + "'");
    std::string t(target.data(), static_cast<size_t>(n));
    if (symlinkat(t.c_str(), to_dir, name.c_str()) != 0 && errno != EEXIST) {
      return base::Errno("symlink '" + shown + "'");
    }
    fchownat(to_dir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    return {};
  }
  if (S_ISREG(st.st_mode)) {
    base::UniqueFd src(openat(from_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!src) return base::Errno("open '" + shown + "'");
    base::UniqueFd dst(openat(to_dir, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!dst) return base::Errno("create '" + shown + "'");
    off_t left = st.st_size;
    while (left > 0) {
      ssize_t n = copy_file_range(src.get(), nullptr, dst.get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0) return base::Errno("copy '" + shown + "'");
      if (n == 0) break;
      left -= n;
    }
    fchown(dst.get(), st.st_uid, st.st_gid);
    fchmod(dst.get(), st.st_mode & 07777);
    return {};
  }
  if (S_ISFIFO(st.st_mode)) {
    mknodat(to_dir, name.c_str(), S_IFIFO | (st.st_mode & 07777), 0);
  }
  return {};  // devices and sockets are not copied
}

}  // namespace

Result<> CopyTree(const std::string& from, const std::string& to) {
  CUBELET_TRY(base::MkdirAll(to));
  base::UniqueFd src(open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  base::UniqueFd dst(open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src) return base::Errno("open '" + from + "'");
  if (!dst) return base::Errno("open '" + to + "'");
  int dupfd = dup(src.get());
  DIR* d = fdopendir(dupfd);
  if (!d) {
    close(dupfd);
    return base::Errno("opendir '" + from + "'");
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  for (const auto& n : names) CUBELET_TRY(CopyAt(src.get(), dst.get(), n, from + "/" + n));
  return {};
}

}  // namespace runtime
