#include "runtime/network/netlink_socket.h"

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

namespace runtime::net {

void NetlinkSocket::Free::operator()(nl_sock* s) const { nl_socket_free(s); }

Result<NetlinkSocket> NetlinkSocket::Open(std::string where) {
  std::unique_ptr<nl_sock, Free> s(nl_socket_alloc());
  if (!s) return base::Fail("allocate netlink socket in " + where, ENOMEM);
  int err = nl_connect(s.get(), NETLINK_ROUTE);
  if (err < 0) return NlFail(err, "connect netlink socket in " + where);
  return NetlinkSocket(std::move(s), std::move(where));
}

Result<NetlinkSocket> NetlinkSocket::OpenIn(const NetNamespace& ns) {
  auto guard = ns.Enter();
  if (!guard) return tl::unexpected(guard.error().Wrap("open netlink socket"));
  return Open("netns " + ns.path());
}

base::Error NlError(int nl_err, std::string_view context) {
  int e = nl_err < 0 ? -nl_err : nl_err;
  int code = 0;
  switch (e) {
    case NLE_EXIST:
      code = EEXIST;
      break;
    case NLE_OBJ_NOTFOUND:
      code = ENOENT;
      break;
    case NLE_NODEV:
      code = ENODEV;
      break;
    case NLE_NOADDR:
      code = EADDRNOTAVAIL;
      break;
    case NLE_PERM:
      code = EPERM;
      break;
    case NLE_BUSY:
      code = EBUSY;
      break;
    case NLE_INVAL:
      code = EINVAL;
      break;
    case NLE_RANGE:
      code = ERANGE;
      break;
    case NLE_OPNOTSUPP:
      code = EOPNOTSUPP;
      break;
    case NLE_NOMEM:
      code = ENOMEM;
      break;
    case NLE_AGAIN:
      code = EAGAIN;
      break;
    case NLE_AF_NOSUPPORT:
      code = EAFNOSUPPORT;
      break;
    case NLE_NOACCESS:
      code = EACCES;
      break;
    default:
      break;
  }
  base::Error out{code, std::string(context)};
  out.message += ": ";
  out.message += nl_geterror(e);
  return out;
}

}  // namespace runtime::net
