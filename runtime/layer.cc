#include "runtime/layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
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

constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";

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

// A whiteout in the overlay form (kDiff). Without the privileges for it (tests as non-root),
// the OCI marker file is kept; CopyLayersMerged and ReadMergedFile understand both.
Result<> DiffWhiteout(int dfd, const std::string& name, LayerStats* stats) {
  if (name == ".wh..wh..opq") {
    if (fsetxattr(dfd, kOpaqueXattr, "y", 1, 0) == 0) return {};
    if (errno != EPERM && errno != ENOTSUP) return base::Errno("set " + std::string(kOpaqueXattr));
  } else {
    std::string target = name.substr(4);
    CUBELET_TRY(RemoveAt(dfd, target));
    if (mknodat(dfd, target.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0) return {};
    if (errno != EPERM) return base::Errno("mknod whiteout '" + target + "'");
  }
  base::UniqueFd f(openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!f) return base::Errno("create '" + name + "'");
  stats->oci_markers = true;
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

Result<LayerStats> ApplyLayer(const std::string& root, TarReader& tar, LayerFormat format) {
  const bool diff = format == LayerFormat::kDiff;
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
      if (diff) {
        CUBELET_TRY_CTX(DiffWhiteout(dfd, name, &stats), "whiteout '" + e.path + "'");
      } else if (name == ".wh..wh..opq") {
        CUBELET_TRY_CTX(ClearDir(dfd, parent, created), "opaque whiteout '" + e.path + "'");
      } else {
        CUBELET_TRY_CTX(RemoveAt(dfd, name.substr(4)), "whiteout '" + e.path + "'");
      }
      continue;
    }
    if (!diff) created.insert(rel);
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

namespace {

bool IsWhiteoutDevice(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// An opaque directory of a kDiff layer (either form).
bool IsOpaqueDir(int dirfd) {
  char v[4] = {0};
  ssize_t n = fgetxattr(dirfd, kOpaqueXattr, v, sizeof v);
  if (n == 1 && v[0] == 'y') return true;
  struct stat st;
  return fstatat(dirfd, ".wh..wh..opq", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

std::vector<std::string> DirNames(int dirfd) {
  std::vector<std::string> names;
  int dup = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return names;
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    return names;
  }
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}

Result<> MergeAt(int from_dir, int to_dir, const std::string& name, const std::string& shown) {
  if (name == ".wh..wh..opq") return {};  // handled with its directory
  if (base::StartsWith(name, ".wh.")) return RemoveAt(to_dir, name.substr(4));
  struct stat st;
  if (fstatat(from_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return base::Errno("stat '" + shown + "'");
  }
  if (IsWhiteoutDevice(st)) return RemoveAt(to_dir, name);
  struct stat dst;
  bool exists = fstatat(to_dir, name.c_str(), &dst, AT_SYMLINK_NOFOLLOW) == 0;
  if (!S_ISDIR(st.st_mode)) {
    if (exists) CUBELET_TRY(RemoveAt(to_dir, name));
    return CopyAt(from_dir, to_dir, name, shown);
  }
  if (exists && !S_ISDIR(dst.st_mode)) {
    CUBELET_TRY(RemoveAt(to_dir, name));
    exists = false;
  }
  if (!exists && mkdirat(to_dir, name.c_str(), 0755) != 0) return base::Errno("mkdir '" + shown + "'");
  base::UniqueFd src(openat(from_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  base::UniqueFd out(openat(to_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!src || !out) return base::Errno("open directory '" + shown + "'");
  if (IsOpaqueDir(src.get())) {
    for (const auto& n : DirNames(out.get())) CUBELET_TRY(RemoveAt(out.get(), n));
  }
  for (const auto& n : DirNames(src.get())) {
    CUBELET_TRY(MergeAt(src.get(), out.get(), n, shown + "/" + n));
  }
  fchown(out.get(), st.st_uid, st.st_gid);
  fchmod(out.get(), st.st_mode & 07777);
  return {};
}

}  // namespace

Result<> CopyLayersMerged(const std::vector<std::string>& layers, const std::string& to) {
  CUBELET_TRY(base::MkdirAll(to));
  base::UniqueFd dst(open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dst) return base::Errno("open '" + to + "'");
  for (const auto& layer : layers) {
    base::UniqueFd src(open(layer.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!src) return base::Errno("open layer '" + layer + "'");
    for (const auto& n : DirNames(src.get())) {
      CUBELET_TRY(MergeAt(src.get(), dst.get(), n, layer + "/" + n));
    }
  }
  return {};
}

namespace {

enum class Found { kAbsent, kDeleted, kFile, kSymlink, kOther };

// Looks up `comps` in one kDiff layer. `hidden_below` is set when a directory on the way is
// opaque (the layers below cannot contribute).
Found LookupInLayer(const std::string& layer, const std::vector<std::string>& comps,
                    std::string* content, bool* hidden_below) {
  base::UniqueFd dir(open(layer.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Found::kAbsent;
  for (size_t i = 0; i < comps.size(); ++i) {
    const std::string& c = comps[i];
    struct stat st;
    if (fstatat(dir.get(), (".wh." + c).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      return Found::kDeleted;
    }
    if (fstatat(dir.get(), c.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Found::kAbsent;
    if (IsWhiteoutDevice(st)) return Found::kDeleted;
    bool last = i + 1 == comps.size();
    if (last) {
      if (S_ISREG(st.st_mode)) {
        base::UniqueFd f(openat(dir.get(), c.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!f) return Found::kAbsent;
        content->clear();
        char buf[8192];
        ssize_t n;
        while ((n = read(f.get(), buf, sizeof buf)) > 0) content->append(buf, static_cast<size_t>(n));
        return Found::kFile;
      }
      if (S_ISLNK(st.st_mode)) {
        std::vector<char> target(4096);
        ssize_t n = readlinkat(dir.get(), c.c_str(), target.data(), target.size() - 1);
        if (n < 0) return Found::kAbsent;
        content->assign(target.data(), static_cast<size_t>(n));
        return Found::kSymlink;
      }
      return Found::kOther;
    }
    if (!S_ISDIR(st.st_mode)) return Found::kDeleted;  // a non-directory hides lower paths
    base::UniqueFd next(openat(dir.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return Found::kAbsent;
    if (IsOpaqueDir(next.get())) *hidden_below = true;
    dir = std::move(next);
  }
  return Found::kOther;
}

}  // namespace

Result<std::optional<std::string>> ReadMergedFile(const std::vector<std::string>& layers,
                                                  const std::string& rel_in) {
  std::string rel = rel_in;
  for (int hops = 0; hops < 8; ++hops) {
    auto clean = CleanLayerPath(rel);
    if (!clean) return tl::unexpected(clean.error());
    std::vector<std::string> comps = base::Split(*clean, '/', true);
    if (comps.empty()) return std::optional<std::string>();
    std::string content;
    Found found = Found::kAbsent;
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
      bool hidden = false;
      found = LookupInLayer(*it, comps, &content, &hidden);
      if (found != Found::kAbsent || hidden) break;
    }
    if (found == Found::kFile) return std::optional<std::string>(content);
    if (found != Found::kSymlink) return std::optional<std::string>();
    // A symlink: resolved inside the view (absolute from its root, relative from its dir).
    comps.pop_back();
    rel = !content.empty() && content[0] == '/' ? content
                                                : base::Join(comps, "/") + "/" + content;
    // ".." that would leave the view stops at its root, as in a chroot.
    std::vector<std::string> norm;
    for (const auto& c : base::Split(rel, '/', true)) {
      if (c == "..") {
        if (!norm.empty()) norm.pop_back();
      } else if (c != ".") {
        norm.push_back(c);
      }
    }
    rel = base::Join(norm, "/");
  }
  return base::Fail("too many levels of symbolic links resolving '" + rel_in + "'");
}

}  // namespace runtime
