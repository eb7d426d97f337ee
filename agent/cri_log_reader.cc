#include "agent/cri_log_reader.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/log.h"

namespace agent {
namespace {

// A partial line is held back until its F entry arrives; past this size it is written out early
// (still without a second timestamp prefix) so a runaway writer cannot grow our memory.
constexpr size_t kMaxPendingLine = 1 << 20;
// A raw line longer than this without '\n' is not CRI output (runtimes split at 16 KiB): treat
// what we have as one line.
constexpr size_t kMaxRawLine = 4 << 20;
// Bytes of a line's start needed to read its tag (timestamp + stream + tag).
constexpr size_t kHeadBytes = 256;

std::string_view NextField(std::string_view* rest, bool* found_space) {
  size_t sp = rest->find(' ');
  *found_space = sp != std::string_view::npos;
  std::string_view field = rest->substr(0, sp);
  *rest = *found_space ? rest->substr(sp + 1) : std::string_view();
  return field;
}

// Returns 'F', 'P' or 0 (malformed) for the start of a raw line.
char TagOf(std::string_view head) {
  size_t nl = head.find('\n');
  if (nl != std::string_view::npos) head = head.substr(0, nl);
  auto e = ParseCriLogLine(head);
  if (!e) return 0;
  return e->partial ? 'P' : 'F';
}

}  // namespace

std::optional<CriLogEntry> ParseCriLogLine(std::string_view line) {
  CriLogEntry e;
  std::string_view rest = line;
  bool space = false;
  e.timestamp = NextField(&rest, &space);
  if (!space) return std::nullopt;
  auto t = base::ParseRfc3339(e.timestamp);
  if (!t) return std::nullopt;
  e.time = *t;
  std::string_view stream = NextField(&rest, &space);
  if (!space) return std::nullopt;
  if (stream == "stdout") {
    e.stream = LogStream::kStdout;
  } else if (stream == "stderr") {
    e.stream = LogStream::kStderr;
  } else {
    return std::nullopt;
  }
  // Tags are ':'-separated for forward compatibility; the first is P (partial) or F. A line
  // that ends right after the tag is an empty message (some writers drop the last space).
  std::string_view tags = NextField(&rest, &space);
  if (tags.empty()) return std::nullopt;
  e.partial = tags.substr(0, tags.find(':')) == "P";
  e.message = rest;
  return e;
}

std::string FixedNanoTimestamp(std::string_view ts) {
  if (ts.size() < 20) return std::string(ts);
  std::string out(ts.substr(0, 19));
  size_t i = 19;
  std::string frac;
  if (ts[i] == '.') {
    ++i;
    while (i < ts.size() && ts[i] >= '0' && ts[i] <= '9') frac += ts[i++];
  }
  frac.resize(9, '0');
  out += '.';
  out += frac;
  out += ts.substr(i);
  return out;
}

base::Result<int64_t> FindTailOffset(int fd, int64_t n, size_t block_size) {
  if (n < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0) return base::Errno("fstat log file");
  if (block_size == 0) block_size = 64 * 1024;
  std::vector<char> block(block_size);
  int64_t end = st.st_size;
  int64_t prev_nl = -1;  // '\n' ending the line being assembled (-1: none found yet)
  int64_t full_lines = 0;
  std::string carry;  // first bytes of the data after the current block, up to prev_nl
  while (end > 0) {
    int64_t start = std::max<int64_t>(0, end - static_cast<int64_t>(block_size));
    size_t len = static_cast<size_t>(end - start);
    size_t got = 0;
    while (got < len) {
      ssize_t r = pread(fd, block.data() + got, len - got, start + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return base::Errno("read log file backwards");
      if (r == 0) break;  // truncated under us: use what we have
      got += static_cast<size_t>(r);
    }
    len = got;
    for (size_t i = len; i-- > 0;) {
      if (block[i] != '\n') continue;
      int64_t nl = start + static_cast<int64_t>(i);
      if (prev_nl >= 0) {
        // The line [nl+1, prev_nl] is complete: classify it by its first bytes (the block's
        // bytes after nl, then the carry when the line runs past this block; TagOf stops at
        // the first '\n').
        std::string head(block.data() + i + 1, std::min(len - i - 1, kHeadBytes));
        if (head.size() < kHeadBytes) head += carry.substr(0, kHeadBytes - head.size());
        if (TagOf(head) == 'F' && ++full_lines == n + 1) return prev_nl + 1;
      }
      prev_nl = nl;
    }
    // Everything in this block before its first '\n' continues the line that ends at prev_nl.
    std::string head(block.data(), std::min(len, kHeadBytes));
    if (head.size() < kHeadBytes) head += carry.substr(0, kHeadBytes - head.size());
    carry = std::move(head);
    end = start;
  }
  // Reached the file start: the first line [0, prev_nl] starts the range.
  if (prev_nl >= 0 && !carry.empty() && TagOf(carry) == 'F' && ++full_lines == n + 1) {
    return prev_nl + 1;
  }
  return 0;
}

CriLogReader::CriLogReader(std::string path, LogReadOptions options)
    : path_(std::move(path)), options_(options) {
  bytes_left_ = options_.limit_bytes;
  if (!options_.follow && options_.tail_lines >= 0) lines_left_ = options_.tail_lines;
}

CriLogReader::~CriLogReader() = default;

base::Result<std::unique_ptr<CriLogReader>> CriLogReader::Open(const std::string& path,
                                                               const LogReadOptions& options) {
  // Resolve symlinks (the /var/log/containers links) so that rotation is detected on the file.
  char resolved[PATH_MAX];
  if (!realpath(path.c_str(), resolved)) return base::Errno("open log file \"" + path + "\"");
  std::unique_ptr<CriLogReader> r(new CriLogReader(resolved, options));
  r->fd_.reset(open(resolved, O_RDONLY | O_CLOEXEC));
  if (!r->fd_) return base::Errno("open log file \"" + r->path_ + "\"");
  struct stat st;
  if (fstat(r->fd_.get(), &st) != 0) return base::Errno("fstat log file \"" + r->path_ + "\"");
  r->dev_ = st.st_dev;
  r->ino_ = st.st_ino;
  auto off = FindTailOffset(r->fd_.get(), options.tail_lines);
  if (!off) return tl::unexpected(off.error().Wrap("tail log file \"" + r->path_ + "\""));
  r->offset_ = *off;
  if (lseek(r->fd_.get(), r->offset_, SEEK_SET) < 0) {
    return base::Errno("seek log file \"" + r->path_ + "\"");
  }
  if (options.follow) {
    r->watch_fd_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!r->watch_fd_) return base::Errno("inotify_init1 for log file \"" + r->path_ + "\"");
    std::string dir = r->path_.substr(0, r->path_.rfind('/'));
    if (dir.empty()) dir = "/";
    // The directory watch reports writes to the file and new files (rotation) alike.
    if (inotify_add_watch(
            r->watch_fd_.get(), dir.c_str(),
            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE) < 0) {
      // Not fatal: the caller polls on a timeout as well.
      base::log::Warn("cannot watch log directory", {{"dir", dir}, {"errno", errno}});
      r->watch_fd_.reset();
    }
  }
  return r;
}

void CriLogReader::DrainWatch() {
  if (!watch_fd_) return;
  alignas(struct inotify_event) char buf[4096];
  while (read(watch_fd_.get(), buf, sizeof buf) > 0) {
  }
}

base::Result<CriLogReader::Status> CriLogReader::Read(std::string* out, size_t max_read) {
  if (done_) return Status::kDone;
  char buf[64 * 1024];
  size_t want = std::min(max_read, sizeof buf);
  ssize_t n;
  do {
    n = read(fd_.get(), buf, want);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return base::Errno("read log file \"" + path_ + "\"");
  if (n == 0) {
    // Without follow an unterminated last line is shown as it is (as the kubelet does); when
    // following, it waits for its '\n'.
    ProcessBuffer(out, !options_.follow);
    return done_ ? Status::kDone : Status::kEof;
  }
  offset_ += n;
  buffer_.append(buf, static_cast<size_t>(n));
  ProcessBuffer(out, false);
  return done_ ? Status::kDone : Status::kData;
}

void CriLogReader::ProcessBuffer(std::string* out, bool at_eof) {
  size_t pos = 0;
  while (!done_) {
    size_t nl = buffer_.find('\n', pos);
    if (nl == std::string::npos) break;
    ProcessLine(std::string_view(buffer_).substr(pos, nl - pos), out);
    pos = nl + 1;
  }
  buffer_.erase(0, pos);
  if (!done_ && !buffer_.empty() && (at_eof || buffer_.size() > kMaxRawLine)) {
    ProcessLine(buffer_, out);
    buffer_.clear();
  }
}

void CriLogReader::ProcessLine(std::string_view line, std::string* out) {
  auto e = ParseCriLogLine(line);
  if (!e) {
    base::log::Debug("skipping malformed CRI log line",
                     {{"path", path_}, {"line", std::string(line.substr(0, 120))}});
    return;
  }
  Pending& p = pending_[static_cast<int>(e->stream)];
  if (!p.active) {
    p.active = true;
    p.skip = options_.since && e->time < *options_.since;
    p.prefix_done = false;
    p.timestamp.assign(e->timestamp);
    p.data.clear();
  }
  if (!p.skip) p.data.append(e->message);
  if (!e->partial) {
    if (!p.skip) p.data += '\n';
    FlushPending(&p, true, out);
  } else if (p.data.size() > kMaxPendingLine) {
    FlushPending(&p, false, out);
  }
}

void CriLogReader::FlushPending(Pending* p, bool end_of_line, std::string* out) {
  if (!p->skip && !p->data.empty()) {
    if (options_.timestamps && !p->prefix_done) {
      Emit(FixedNanoTimestamp(p->timestamp) + " ", out);
      p->prefix_done = true;
    }
    Emit(p->data, out);
  }
  p->data.clear();
  if (end_of_line) {
    bool counted = !p->skip;
    p->active = false;
    if (counted && lines_left_ > 0 && --lines_left_ == 0) done_ = true;
  }
}

void CriLogReader::Emit(std::string_view data, std::string* out) {
  if (done_) return;
  if (bytes_left_ >= 0 && static_cast<int64_t>(data.size()) >= bytes_left_) {
    out->append(data.substr(0, static_cast<size_t>(bytes_left_)));
    bytes_left_ = 0;
    done_ = true;
    return;
  }
  out->append(data);
  if (bytes_left_ >= 0) bytes_left_ -= static_cast<int64_t>(data.size());
}

base::Result<bool> CriLogReader::ReopenIfRotated(std::string* out) {
  struct stat cur;
  if (fstat(fd_.get(), &cur) != 0) return base::Errno("fstat log file \"" + path_ + "\"");
  if (cur.st_size < offset_) {
    // copytruncate: the same file was emptied; start over from its beginning.
    if (lseek(fd_.get(), 0, SEEK_SET) < 0) return base::Errno("seek log file \"" + path_ + "\"");
    offset_ = 0;
    buffer_.clear();
    return true;
  }
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;  // renamed away, new one not created yet: keep waiting
    return base::Errno("stat log file \"" + path_ + "\"");
  }
  if (st.st_dev == dev_ && st.st_ino == ino_) return false;
  base::UniqueFd next(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!next) {
    if (errno == ENOENT) return false;
    return base::Errno("open rotated log file \"" + path_ + "\"");
  }
  // Whatever reached the old file after our last read still belongs to the stream.
  for (;;) {
    auto r = Read(out);
    if (!r) return tl::unexpected(r.error());
    if (*r != Status::kData) break;
  }
  if (!buffer_.empty() && !done_) {
    ProcessLine(buffer_, out);  // the old file will not get its '\n' any more
    buffer_.clear();
  }
  if (fstat(next.get(), &st) != 0) return base::Errno("fstat log file \"" + path_ + "\"");
  fd_ = std::move(next);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  offset_ = 0;
  return true;
}

void CriLogReader::Finish(std::string* out) {
  for (Pending& p : pending_) {
    if (p.active) {
      p.active = false;
      if (!p.skip && !p.data.empty()) {
        if (options_.timestamps && !p.prefix_done) Emit(FixedNanoTimestamp(p.timestamp) + " ", out);
        Emit(p.data, out);
      }
      p.data.clear();
    }
  }
}

}  // namespace agent
