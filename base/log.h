#pragma once
// Structured, leveled logs to stderr in logfmt (journald keeps stderr):
//   time=2026-11-24T09:00:00.123Z level=info msg="pod started" pod=default/web ip=10.244.1.5
#include <initializer_list>
#include <string>
#include <string_view>

namespace base::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

struct Field {
  std::string_view key;
  std::string value;
  Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
  Field(std::string_view k, N n) : key(k), value(std::to_string(n)) {}
};

void SetLevel(Level level);
Level GetLevel();
// Parses "debug|info|warn|error" (or klog-style verbosity "0".."10"); false if unknown.
bool ParseLevel(std::string_view text, Level* out);
// Adds a field to every line (e.g. component=cubelet-monitor).
void SetComponent(std::string_view component);

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields);

inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kDebug, m, f); }
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kInfo, m, f); }
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kWarn, m, f); }
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kError, m, f); }

}  // namespace base::log
