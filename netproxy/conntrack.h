#pragma once
// Removal of stale UDP conntrack entries (kube-proxy's conntrack.CleanStaleEntries), through
// netlink (libnetfilter_conntrack), in the network namespace of the calling thread.
//
// A UDP "connection" to a service keeps its NAT binding in conntrack while the client keeps
// sending (DNS clients reuse ports): after its endpoint is gone, replaced, or while the service
// had no endpoints, the flow would keep going nowhere. Every UDP entry whose original
// destination is a service frontend (cluster IP, external IP, LB IP : port, or a node port) and
// whose reply does not come from a serving endpoint of that service is deleted.
#include <cstddef>

#include "base/result.h"
#include "netproxy/proxy_state.h"

namespace netproxy {

// Returns how many entries were deleted.
base::Result<size_t> CleanStaleUdpConntrack(const ProxyState& state);

}  // namespace netproxy
