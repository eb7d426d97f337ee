#include "runtime/monitor/cri_log.h"

#include <time.h>

#include <cstdio>

namespace monitor {

std::string FormatRfc3339NanoUtc(int64_t unix_ns) {
  int64_t sec = unix_ns / 1000000000;
  int64_t nsec = unix_ns % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    --sec;
  }
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf, static_cast<size_t>(n));
  if (nsec != 0) {
    char frac[16];
    snprintf(frac, sizeof frac, "%09lld", static_cast<long long>(nsec));
    std::string f(frac);
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += '.';
    out += f;
  }
  out += 'Z';
  return out;
}

std::string FormatCriLine(int64_t unix_ns, std::string_view stream, bool partial,
                          std::string_view message) {
  std::string out = FormatRfc3339NanoUtc(unix_ns);
  out.reserve(out.size() + stream.size() + message.size() + 5);
  out += ' ';
  out.append(stream);
  out += partial ? " P " : " F ";
  out.append(message);
  out += '\n';
  return out;
}

void CriLineSplitter::Feed(std::string_view data, int64_t now_ns, std::string* out) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    std::string_view chunk = data.substr(0, nl);
    // Emit full-size partial entries while the pending line is too long.
    while (buf_.size() + chunk.size() >= kMaxLineBytes &&
           !(nl != std::string_view::npos && buf_.size() + chunk.size() == kMaxLineBytes)) {
      size_t take = kMaxLineBytes - buf_.size();
      buf_.append(chunk.substr(0, take));
      chunk = chunk.substr(take);
      *out += FormatCriLine(now_ns, stream_, true, buf_);
      buf_.clear();
    }
    buf_.append(chunk);
    if (nl == std::string_view::npos) return;
    *out += FormatCriLine(now_ns, stream_, false, buf_);
    buf_.clear();
    data = data.substr(nl + 1);
  }
}

void CriLineSplitter::Finish(int64_t now_ns, std::string* out) {
  if (buf_.empty()) return;
  *out += FormatCriLine(now_ns, stream_, true, buf_);
  buf_.clear();
}

}  // namespace monitor
