#include "runtime/port_forward.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace runtime {
namespace {

// One non-blocking connect with a deadline; "" on success, else why not.
std::string Connect(int family, uint16_t port, std::chrono::milliseconds timeout,
                    base::UniqueFd* out) {
  base::UniqueFd s(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) return std::string("socket: ") + strerror(errno);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  }
  if (connect(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) return strerror(errno);
    pollfd p{s.get(), POLLOUT, 0};
    int r;
    do {
      r = poll(&p, 1, static_cast<int>(timeout.count()));
    } while (r < 0 && errno == EINTR);
    if (r == 0) return "connection timed out";
    int err = 0;
    socklen_t elen = sizeof err;
    if (r < 0 || getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
      return strerror(errno);
    }
    if (err != 0) return strerror(err);
  }
  *out = std::move(s);
  return "";
}

}  // namespace

base::Result<base::UniqueFd> DialLocalhostInNetns(const std::string& netns_path, uint16_t port,
                                                  const std::string& what,
                                                  std::chrono::milliseconds timeout) {
  base::UniqueFd ns;
  if (!netns_path.empty()) {
    ns.reset(open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return base::Errno("port forward to " + what + ": open " + netns_path);
  }
  base::UniqueFd conn;
  std::string setns_err, v4_err, v6_err;
  // setns() moves only the calling thread; this one ends right after, so no other work of the
  // process ever runs in the pod's network. Sockets keep the namespace they were made in.
  std::thread t([&] {
    if (ns && setns(ns.get(), CLONE_NEWNET) != 0) {
      setns_err = std::string("setns: ") + strerror(errno);
      return;
    }
    v4_err = Connect(AF_INET, port, timeout, &conn);
    if (v4_err.empty()) return;
    v6_err = Connect(AF_INET6, port, timeout, &conn);
  });
  t.join();
  if (!setns_err.empty()) return base::Fail("port forward to " + what + ": " + setns_err);
  if (!conn) {
    std::string p = std::to_string(port);
    return base::Fail("failed to connect to localhost:" + p + " inside the network namespace of " +
                          what + ", IPv4: 127.0.0.1:" + p + ": " + v4_err + ", IPv6: [::1]:" + p +
                          ": " + v6_err,
                      ECONNREFUSED);
  }
  return conn;
}

}  // namespace runtime
