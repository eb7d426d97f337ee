#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace base {

using WallTime = std::chrono::system_clock::time_point;

// Kubernetes metav1.Time: RFC3339 in whole seconds, UTC ("2024-01-01T00:00:00Z").
std::string FormatRfc3339(WallTime t);
// metav1.MicroTime: six fractional digits ("2023-08-27T03:21:06.584188Z").
std::string FormatRfc3339Micro(WallTime t);
// CRI log timestamps: RFC3339Nano as Go prints it (trailing zeros trimmed).
std::string FormatRfc3339Nano(WallTime t);
// Parses RFC3339 with optional fraction and Z or +hh:mm offset.
std::optional<WallTime> ParseRfc3339(std::string_view s);

int64_t ToUnixNanos(WallTime t);
WallTime FromUnixNanos(int64_t ns);

// A seam for time so that planning code can be tested with a fixed clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;
  virtual std::chrono::steady_clock::time_point Monotonic() const = 0;
};

class RealClock final : public Clock {
 public:
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point Monotonic() const override {
    return std::chrono::steady_clock::now();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(WallTime now) : now_(now) {}
  WallTime Now() const override { return now_; }
  std::chrono::steady_clock::time_point Monotonic() const override {
    return std::chrono::steady_clock::time_point(now_.time_since_epoch());
  }
  void Advance(std::chrono::nanoseconds d) { now_ += std::chrono::duration_cast<WallTime::duration>(d); }

 private:
  WallTime now_;
};

// A Go duration ("1m30s", "90s", "1h", "250ms", "0") as the kubelet's flags take it.
bool ParseGoDuration(const std::string& text, std::chrono::milliseconds* out);
// As Go's time.Duration.String() for a whole number of milliseconds: "0s", "250ms", "10s",
// "1m30.5s", "2m0s", "1h0m0s" (what the kubelet's /configz shows).
std::string FormatGoDuration(std::chrono::milliseconds d);

}  // namespace base
