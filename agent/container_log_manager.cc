#include "agent/container_log_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <tuple>

#include "base/fd.h"
#include "base/file.h"
#include "base/log.h"
#include "base/scope_guard.h"
#include "base/strings.h"

namespace agent {

namespace {

// The kubelet's timestampFormat "20060102-150405" (UTC).
std::string RotationTimestamp(base::WallTime now) {
  time_t t = std::chrono::system_clock::to_time_t(now);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  snprintf(buf, sizeof buf, "%04d%02d%02d-%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// Order of rotated files: by timestamp, then by the "-N" added when two rotations fell in the
// same second; names in another form (e.g. a manual "0.log.1") sort first, as the oldest.
std::tuple<bool, std::string, long, std::string> SortKey(const std::string& suffix) {
  std::string s = suffix;
  if (base::EndsWith(s, ".gz")) s.resize(s.size() - 3);
  constexpr size_t kTs = 15;  // YYYYMMDD-HHMMSS
  bool stamped = s.size() >= kTs && s[8] == '-' &&
                 std::all_of(s.begin(), s.begin() + 8, ::isdigit) &&
                 std::all_of(s.begin() + 9, s.begin() + kTs, ::isdigit);
  long n = 0;
  if (stamped && s.size() > kTs) {
    if (s[kTs] != '-') return {false, suffix, 0, suffix};
    n = strtol(s.c_str() + kTs + 1, nullptr, 10);
  }
  if (!stamped) return {false, suffix, 0, suffix};
  return {true, s.substr(0, kTs), n, suffix};
}

bool FileSize(const std::string& path, int64_t* size, int* err) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *err = errno;
    return false;
  }
  *size = st.st_size;
  return true;
}

}  // namespace

base::Result<> CompressLog(const std::string& path) {
  std::string tmp = path + ".tmp";
  base::UniqueFd in(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return base::Errno("compress log " + path + ": open");
  base::UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (!out) return base::Errno("compress log " + path + ": create " + tmp);
  auto drop_tmp = base::Defer([&] { unlink(tmp.c_str()); });
  gzFile gz = gzdopen(out.get(), "wb");
  if (!gz) return base::Fail("compress log " + path + ": gzdopen failed");
  (void)out.release();  // gzclose closes it
  std::vector<char> buf(64 * 1024);
  bool ok = true;
  while (ok) {
    ssize_t n = read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      gzclose(gz);
      return base::Errno("compress log " + path + ": read", err);
    }
    if (n == 0) break;
    ok = gzwrite(gz, buf.data(), static_cast<unsigned>(n)) == static_cast<int>(n);
  }
  if (gzclose(gz) != Z_OK || !ok) return base::Fail("compress log " + path + ": write " + tmp);
  if (rename(tmp.c_str(), (path + ".gz").c_str()) != 0) {
    return base::Errno("compress log " + path + ": rename " + tmp);
  }
  drop_tmp.Dismiss();
  if (unlink(path.c_str()) != 0) return base::Errno("compress log " + path + ": remove");
  return {};
}

base::Result<> ValidateContainerLogOptions(const ContainerLogManagerOptions& o) {
  if (o.max_files <= 1) {
    return base::Fail("invalid container-log-max-files " + std::to_string(o.max_files) +
                      ": it must be larger than 1");
  }
  if (o.max_size_bytes <= 0) {
    return base::Fail("invalid container-log-max-size " + std::to_string(o.max_size_bytes) +
                      ": it must be positive");
  }
  return {};
}

ContainerLogManager::ContainerLogManager(cri::RuntimeService* runtime,
                                         ContainerLogManagerOptions options,
                                         const base::Clock* clock)
    : runtime_(runtime), opts_(options), clock_(clock) {}

ContainerLogManager::~ContainerLogManager() { Stop(); }

void ContainerLogManager::Start() {
  loop_.Start(opts_.monitor_interval, [this] { RotateLogs(); });
}

void ContainerLogManager::Stop() { loop_.Stop(); }

int ContainerLogManager::RotateLogs() {
  cri::ContainerFilter running;
  running.state = cri::ContainerState::kRunning;
  auto list = runtime_->ListContainers(running);
  if (!list) {
    base::log::Error("failed to list running containers for log rotation",
                     {{"err", list.error().message}});
    return 0;
  }
  int rotated = 0;
  for (const auto& c : *list) {
    auto st = runtime_->ContainerStatus(c.id);
    if (!st) {
      base::log::Error("failed to get container status for log rotation",
                       {{"containerID", c.id}, {"err", st.error().message}});
      continue;
    }
    if (st->state != cri::ContainerState::kRunning || st->log_path.empty()) continue;
    auto r = RotateIfNeeded(c.id, st->log_path);
    if (!r) {
      base::log::Error("failed to rotate log for container",
                       {{"path", st->log_path}, {"containerID", c.id}, {"err", r.error().message}});
      continue;
    }
    rotated += *r ? 1 : 0;
  }
  return rotated;
}

base::Result<bool> ContainerLogManager::RotateIfNeeded(const std::string& id,
                                                       const std::string& log_path) {
  int64_t size = 0;
  int err = 0;
  if (!FileSize(log_path, &size, &err)) {
    if (err != ENOENT) return base::Errno("stat log " + log_path + " of container " + id, err);
    // Renamed but never reopened (e.g. cubelet stopped in between): have the runtime create it.
    base::log::Warn("container log is missing, reopening it",
                    {{"path", log_path}, {"containerID", id}});
    auto r = runtime_->ReopenContainerLog(id);
    if (!r) return tl::unexpected(r.error().Wrap("reopen missing log " + log_path));
    return false;
  }
  if (size < opts_.max_size_bytes) return false;
  CUBELET_TRY(Rotate(id, log_path));
  return true;
}

base::Result<std::vector<std::string>> ContainerLogManager::RotatedFiles(
    const std::string& log_path) {
  size_t slash = log_path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : log_path.substr(0, slash);
  std::string prefix = log_path.substr(slash == std::string::npos ? 0 : slash + 1) + ".";
  DIR* d = opendir(dir.c_str());
  if (!d) return base::Errno("list log directory " + dir);
  std::vector<std::string> suffixes;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > prefix.size() && base::StartsWith(name, prefix)) {
      suffixes.push_back(name.substr(prefix.size()));
    }
  }
  closedir(d);
  std::sort(suffixes.begin(), suffixes.end(),
            [](const std::string& a, const std::string& b) { return SortKey(a) < SortKey(b); });
  std::vector<std::string> out;
  for (const auto& s : suffixes) out.push_back(log_path + "." + s);
  return out;
}

base::Result<> ContainerLogManager::Rotate(const std::string& id, const std::string& log_path) {
  std::string what = "rotate log " + log_path + " of container " + id;
  auto files = RotatedFiles(log_path);
  if (!files) return tl::unexpected(files.error().Wrap(what));
  // Leftovers of an interrupted compression (the kubelet's cleanupUnusedLogs): temporary files,
  // and originals whose .gz was completed but that were not removed yet.
  std::set<std::string> names(files->begin(), files->end());
  std::vector<std::string> rotated;
  for (const auto& f : *files) {
    if (base::EndsWith(f, ".tmp") || names.count(f + ".gz")) {
      if (unlink(f.c_str()) != 0 && errno != ENOENT) return base::Errno(what + ": remove " + f);
    } else {
      rotated.push_back(f);
    }
  }
  // Keep max_files - 2 rotated files: with the one made now and the current file, max_files.
  size_t keep = static_cast<size_t>(std::max(opts_.max_files - 2, 0));
  for (size_t i = 0; i + keep < rotated.size(); ++i) {
    if (unlink(rotated[i].c_str()) != 0 && errno != ENOENT) {
      return base::Errno(what + ": remove old log " + rotated[i]);
    }
    base::log::Debug("removed rotated container log", {{"path", rotated[i]}});
  }
  if (rotated.size() > keep) rotated.erase(rotated.begin(), rotated.end() - keep);
  // All but the newest rotated file are gzipped (the kubelet's compressLog): nothing writes to
  // them any more, the runtime reopened away from the newest one before that rotation returned.
  for (size_t i = 0; i + 1 < rotated.size(); ++i) {
    if (base::EndsWith(rotated[i], ".gz")) continue;
    CUBELET_TRY_CTX(CompressLog(rotated[i]), what);
  }
  // Two rotations in one second: "-N" after the highest N seen (before the removals above), so
  // that names keep sorting in rotation order.
  std::string stamp = RotationTimestamp(clock_->Now());
  long last = -1;
  for (const auto& f : rotated) {
    auto [stamped, ts, n, suffix] = SortKey(f.substr(log_path.size() + 1));
    if (stamped && ts == stamp) last = std::max(last, n);
  }
  std::string target = log_path + "." + stamp + (last < 0 ? "" : "-" + std::to_string(last + 1));
  if (rename(log_path.c_str(), target.c_str()) != 0) return base::Errno(what + ": rename");
  auto reopened = runtime_->ReopenContainerLog(id);
  if (!reopened) {
    // Rename it back so that the next round tries again (the runtime still writes to it).
    if (rename(target.c_str(), log_path.c_str()) != 0) {
      base::log::Error("failed to rename rotated log back",
                       {{"path", target}, {"containerID", id}, {"err", strerror(errno)}});
    }
    return tl::unexpected(reopened.error().Wrap(what + ": reopen"));
  }
  base::log::Debug("rotated container log", {{"path", log_path}, {"rotated", target}});
  return {};
}

}  // namespace agent
