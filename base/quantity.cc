#include "base/quantity.h"

#include <cmath>
#include <string>

namespace base {
namespace {

// Parses into a decimal mantissa (as digits + scale) and a multiplier, returning the value scaled
// by `scale` (1 for Value, 1000 for MilliValue), rounded up like resource.Quantity does.
Result<int64_t> ParseScaled(std::string_view q, int64_t scale) {
  std::string s(q);
  if (s.empty()) return Fail("quantity is empty");
  size_t i = 0;
  bool neg = false;
  if (s[i] == '+' || s[i] == '-') {
    neg = s[i] == '-';
    ++i;
  }
  // Mantissa as an integer with a decimal exponent.
  __int128 mant = 0;
  int exp10 = 0;
  bool digits = false, dot = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      digits = true;
      if (mant < (static_cast<__int128>(1) << 100)) {
        mant = mant * 10 + (c - '0');
        if (dot) --exp10;
      } else if (!dot) {
        ++exp10;
      }
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digits) return Fail("quantity '" + s + "' has no number");
  std::string suffix = s.substr(i);
  __int128 mul_num = 1;  // binary multipliers
  int extra_exp10 = 0;
  if (suffix.empty()) {
  } else if (suffix == "Ki") mul_num = 1LL << 10;
  else if (suffix == "Mi") mul_num = 1LL << 20;
  else if (suffix == "Gi") mul_num = 1LL << 30;
  else if (suffix == "Ti") mul_num = 1LL << 40;
  else if (suffix == "Pi") mul_num = 1LL << 50;
  else if (suffix == "Ei") mul_num = 1LL << 60;
  else if (suffix == "n") extra_exp10 = -9;
  else if (suffix == "u") extra_exp10 = -6;
  else if (suffix == "m") extra_exp10 = -3;
  else if (suffix == "k") extra_exp10 = 3;
  else if (suffix == "M") extra_exp10 = 6;
  else if (suffix == "G") extra_exp10 = 9;
  else if (suffix == "T") extra_exp10 = 12;
  else if (suffix == "P") extra_exp10 = 15;
  else if (suffix == "E") extra_exp10 = 18;
  else if (suffix[0] == 'e' || suffix[0] == 'E') {
    try {
      size_t used = 0;
      int e = std::stoi(suffix.substr(1), &used);
      if (used != suffix.size() - 1) return Fail("quantity '" + s + "' has a bad exponent");
      extra_exp10 = e;
    } catch (...) {
      return Fail("quantity '" + s + "' has a bad exponent");
    }
  } else {
    return Fail("quantity '" + s + "' has an unknown suffix '" + suffix + "'");
  }
  int e = exp10 + extra_exp10;
  __int128 v = mant * mul_num * scale;
  __int128 limit = static_cast<__int128>(INT64_MAX);
  while (e > 0) {
    v *= 10;
    --e;
    if (v > limit) return Fail("quantity '" + s + "' is too large");
  }
  bool remainder = false;
  while (e < 0) {
    if (v % 10 != 0) remainder = true;
    v /= 10;
    ++e;
  }
  if (remainder) v += 1;  // round up (away from zero) as Quantity.Value() does
  if (v > limit) return Fail("quantity '" + s + "' is too large");
  int64_t r = static_cast<int64_t>(v);
  return neg ? -r : r;
}

}  // namespace

Result<int64_t> ParseQuantityMilli(std::string_view q) { return ParseScaled(q, 1000); }
Result<int64_t> ParseQuantity(std::string_view q) { return ParseScaled(q, 1); }

std::string FormatBytesKi(int64_t bytes) {
  if (bytes != 0 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + "Ki";
  return std::to_string(bytes);
}

}  // namespace base
