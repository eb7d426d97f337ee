#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "base/time.h"

namespace base::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mu;
std::string g_component;

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

bool NeedsQuote(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

void AppendValue(std::string& out, std::string_view v) {
  if (!NeedsQuote(v)) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

void SetLevel(Level level) { g_level.store(level); }
Level GetLevel() { return g_level.load(); }

bool ParseLevel(std::string_view t, Level* out) {
  if (t == "debug" || t == "trace") { *out = Level::kDebug; return true; }
  if (t == "info") { *out = Level::kInfo; return true; }
  if (t == "warn" || t == "warning") { *out = Level::kWarn; return true; }
  if (t == "error") { *out = Level::kError; return true; }
  if (!t.empty() && t.find_first_not_of("0123456789") == std::string_view::npos) {
    *out = std::stoi(std::string(t)) >= 4 ? Level::kDebug : Level::kInfo;
    return true;
  }
  return false;
}

void SetComponent(std::string_view component) {
  std::lock_guard lk(g_mu);
  g_component = component;
}

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (level < g_level.load()) return;
  std::string line;
  line.reserve(128);
  line += "time=";
  line += FormatRfc3339Micro(std::chrono::system_clock::now());
  line += " level=";
  line += LevelName(level);
  {
    std::lock_guard lk(g_mu);
    if (!g_component.empty()) {
      line += " component=";
      AppendValue(line, g_component);
    }
  }
  line += " msg=";
  AppendValue(line, msg);
  for (const auto& f : fields) {
    line += ' ';
    line += f.key;
    line += '=';
    AppendValue(line, f.value);
  }
  line += '\n';
  // One write() per line keeps lines whole when several threads log at once.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace base::log
