#pragma once
// Port forwarding into a pod (CRI PortForward): a TCP connection to localhost:<port> inside the
// pod's network namespace, as containerd's sandbox port forward makes it (IPv4 first, then
// IPv6). The socket is created by a short-lived thread that has entered the namespace, so it
// stays in the pod's network while the caller (in the host's) relays it.
#include <chrono>
#include <cstdint>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace runtime {

// Connects to 127.0.0.1:port, else [::1]:port, in the network namespace file `netns_path`
// ("" = the caller's own). The socket returned is connected and non-blocking. Errors name both
// attempts: 'failed to connect to localhost:8080 inside the network namespace of pod sandbox
// "ID", IPv4: 127.0.0.1:8080: Connection refused, IPv6: [::1]:8080: Connection refused'.
base::Result<base::UniqueFd> DialLocalhostInNetns(const std::string& netns_path, uint16_t port,
                                                  const std::string& what,
                                                  std::chrono::milliseconds timeout =
                                                      std::chrono::seconds(10));

}  // namespace runtime
