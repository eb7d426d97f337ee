#pragma once
// Reads container log files in the CRI format the runtime writes
//   2016-10-06T00:17:09.669794202Z stdout P first half of a long line
//   2016-10-06T00:17:09.669794203Z stdout F second half
// and renders them as the kubelet's /containerLogs does: message bytes only, partial (P) entries
// joined per stream until the full (F) entry, optional "<RFC3339Nano fixed> " prefix per line,
// tailLines / sinceTime / limitBytes, and following a growing (and rotated) file.
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/result.h"
#include "base/time.h"

namespace agent {

enum class LogStream { kStdout = 0, kStderr = 1 };

struct CriLogEntry {
  std::string_view timestamp;  // as written in the file
  base::WallTime time;
  LogStream stream = LogStream::kStdout;
  bool partial = false;      // tag P
  std::string_view message;  // without the trailing '\n'
};

// Parses one line (without its '\n'). nullopt when malformed (bad time, unknown stream, no tag).
std::optional<CriLogEntry> ParseCriLogLine(std::string_view line);

// The kubelet's output timestamp: RFC3339 with exactly nine fraction digits, the file's zone
// kept ("2016-10-06T00:17:09.6697942Z" -> "2016-10-06T00:17:09.669794200Z").
std::string FixedNanoTimestamp(std::string_view rfc3339);

// Offset where the last `n` full lines start: a full line ends with an F entry; the P entries
// before it belong to it. Reads backwards in `block_size` pieces, so only the end of a large
// file is touched. A trailing line without '\n' (being written) is not counted. n < 0 -> 0.
base::Result<int64_t> FindTailOffset(int fd, int64_t n, size_t block_size = 64 * 1024);

struct LogReadOptions {
  bool follow = false;
  bool timestamps = false;
  int64_t tail_lines = -1;              // < 0: all
  std::optional<base::WallTime> since;  // entries older than this are skipped
  int64_t limit_bytes = -1;             // < 0: unlimited; counts output bytes (prefixes included)
};

class CriLogReader {
 public:
  enum class Status {
    kData,  // read something; call again
    kEof,   // at the end of the file for now (follow: wait, then call again)
    kDone,  // limitBytes reached, or tailLines lines written without follow: stop
  };

  static base::Result<std::unique_ptr<CriLogReader>> Open(const std::string& path,
                                                          const LogReadOptions& options);
  ~CriLogReader();

  // Reads up to max_read bytes of the file and appends the rendered output to *out.
  base::Result<Status> Read(std::string* out, size_t max_read = 64 * 1024);

  // Follow support. watch_fd() becomes readable (inotify on the file's directory) when the file
  // is written or a file is created/moved into the directory; -1 when not following.
  int watch_fd() const { return watch_fd_.get(); }
  void DrainWatch();
  // After Read() returned kEof: if another file now sits at the path (the old one was rotated
  // away) or the file was truncated (copytruncate), drains the old one into *out and continues
  // with the new file from its start. Returns true if it switched.
  base::Result<bool> ReopenIfRotated(std::string* out);

  // End of the stream: renders lines still waiting for their F entry (without a '\n').
  void Finish(std::string* out);

  const std::string& path() const { return path_; }
  int64_t offset() const { return offset_; }

 private:
  struct Pending {
    bool active = false;       // a line has started (P entries seen)
    bool skip = false;         // line is older than `since`
    bool prefix_done = false;  // timestamp prefix already written (line flushed early)
    std::string timestamp;
    std::string data;
  };

  CriLogReader(std::string path, LogReadOptions options);
  void ProcessBuffer(std::string* out, bool at_eof);
  void ProcessLine(std::string_view line, std::string* out);
  void FlushPending(Pending* p, bool end_of_line, std::string* out);
  void Emit(std::string_view data, std::string* out);

  std::string path_;
  LogReadOptions options_;
  base::UniqueFd fd_;
  base::UniqueFd watch_fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int64_t offset_ = 0;
  std::string buffer_;  // bytes read but not yet a complete line
  std::array<Pending, 2> pending_;
  int64_t bytes_left_ = -1;  // < 0 unlimited
  int64_t lines_left_ = -1;  // < 0 unlimited (only without follow)
  bool done_ = false;
};

}  // namespace agent
