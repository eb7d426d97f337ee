#pragma once
// CRI container log format (K:pkg/kubelet/kuberuntime/logs/logs.go):
//   <RFC3339Nano timestamp> <stdout|stderr> <P|F> <message>\n
// A line longer than kMaxLineBytes, or the tail of a stream that ends without a newline, is
// written as partial (P) entries; the entry that completes a line is F.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace monitor {

constexpr size_t kMaxLineBytes = 16 * 1024;

// Go's time.RFC3339Nano in UTC: trailing zeros of the fraction trimmed, no fraction when zero.
std::string FormatRfc3339NanoUtc(int64_t unix_ns);

std::string FormatCriLine(int64_t unix_ns, std::string_view stream, bool partial,
                          std::string_view message);

// Splits one stream's bytes into CRI log entries.
class CriLineSplitter {
 public:
  explicit CriLineSplitter(std::string stream) : stream_(std::move(stream)) {}
  // Appends the entries completed by `data` to *out.
  void Feed(std::string_view data, int64_t now_ns, std::string* out);
  // End of stream: a pending unterminated line becomes a partial entry.
  void Finish(int64_t now_ns, std::string* out);
  size_t pending() const { return buf_.size(); }

 private:
  std::string stream_;
  std::string buf_;
};

}  // namespace monitor
