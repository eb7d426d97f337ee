#pragma once
// One error value for the layers below agent/ (base, cgroups, runtime, cri, netproxy):
// tl::expected<T, base::Error>. Each layer adds context ("assign pid 42 to cgroup 'x': EBUSY")
// so that what reaches a user names the object and the cause.
#include <cerrno>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace base {

struct Error {
  int code = 0;         // errno when the cause is a syscall, else 0
  std::string message;  // "context: cause"

  // Returns a copy with `context` prepended: "context: message".
  Error Wrap(std::string_view context) const {
    Error e{code, std::string(context)};
    e.message += ": ";
    e.message += message;
    return e;
  }
};

template <class T = void>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> Fail(std::string message, int code = 0) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

// Captures errno at the call site: "context: strerror(errno)".
tl::unexpected<Error> Errno(std::string_view context);
tl::unexpected<Error> Errno(std::string_view context, int err);

}  // namespace base

// Propagates the error of a Result expression with added context.
#define CUBELET_TRY_CTX(expr, ctx)                          \
  do {                                                      \
    auto&& _r = (expr);                                     \
    if (!_r) return tl::unexpected(_r.error().Wrap(ctx));   \
  } while (0)

#define CUBELET_TRY(expr)                                   \
  do {                                                      \
    auto&& _r = (expr);                                     \
    if (!_r) return tl::unexpected(std::move(_r.error()));  \
  } while (0)
