#include "base/result.h"

#include <cstring>

namespace base {

tl::unexpected<Error> Errno(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  return tl::unexpected<Error>(Error{err, std::move(msg)});
}

tl::unexpected<Error> Errno(std::string_view context) { return Errno(context, errno); }

}  // namespace base
