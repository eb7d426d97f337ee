#pragma once
// A libnl route socket bound to one network namespace: a netlink socket acts in the namespace of
// the thread that created it, so OpenIn() creates it while switched into that namespace and every
// later request through it (from any thread) acts there. Not thread-safe: one per thread or call.
#include <memory>
#include <string>

#include "base/result.h"
#include "runtime/network/netns.h"

struct nl_sock;

namespace runtime::net {

class NetlinkSocket {
 public:
  // Bound to the calling thread's namespace; `where` names it in error messages.
  static Result<NetlinkSocket> Open(std::string where = "current netns");
  static Result<NetlinkSocket> OpenIn(const NetNamespace& ns);

  nl_sock* get() const { return sock_.get(); }
  // "netns /run/cubelet/netns/<id>": for error messages.
  const std::string& where() const { return where_; }

 private:
  struct Free {
    void operator()(nl_sock* s) const;
  };
  NetlinkSocket(std::unique_ptr<nl_sock, Free> s, std::string where)
      : sock_(std::move(s)), where_(std::move(where)) {}
  std::unique_ptr<nl_sock, Free> sock_;
  std::string where_;
};

// libnl's negative NLE_* code as an error: "context: <libnl message>", with the closest errno.
base::Error NlError(int nl_err, std::string_view context);
inline tl::unexpected<base::Error> NlFail(int nl_err, std::string_view context) {
  return tl::unexpected(NlError(nl_err, context));
}

}  // namespace runtime::net
