#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace base {

std::vector<std::string> Split(std::string_view s, char sep, bool skip_empty = false);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view Trim(std::string_view s);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);
std::string ToLower(std::string_view s);
// Percent-encodes every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~), as
// Go's url.QueryEscape / PathEscape agree on for them: query values and single path segments.
std::string PercentEncode(std::string_view s);
// Random lowercase alphanumeric string (for ids, generateName suffixes).
std::string RandomAlnum(size_t n);
// 64 hex chars of random data (container and sandbox ids, like containerd's).
std::string RandomHexId();
// Prometheus text format: a sample value ("%.15g": 1.5, 4096, 1e+21) and a label value with
// backslash, double quote and newline escaped.
std::string PromValue(double v);
std::string PromLabelValue(std::string_view v);
// One metric family: its samples, then Render() = "# HELP", "# TYPE" and the samples.
struct PromFamily {
  const char* name;
  const char* type;  // "counter", "gauge"
  const char* help;
  std::string samples;
  // `labels` is "{...}" or empty; `suffix` a " <timestamp ms>" or empty.
  void Add(std::string_view labels, double value, std::string_view suffix = {});
  std::string Render() const;
};

}  // namespace base
