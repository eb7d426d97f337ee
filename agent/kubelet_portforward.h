#pragma once
// /portForward on the kubelet API (internal to the kubelet server): the upgrade handshakes and
// the relay between the client's streams and TCP connections to localhost:<port> inside the
// pod's network namespace (made by cri::RuntimeService::PortForward). Two transports, as the
// kubelet's streaming server has (K:pkg/kubelet/cri/streaming/portforward):
//   - SPDY/3.1 with X-Stream-Protocol-Version portforward.k8s.io: what a real kube-apiserver
//     speaks to the kubelet for `kubectl port-forward` (kubectl 1.31+ tunnels SPDY through a
//     WebSocket to the API server, which unwraps it; older kubectl sends SPDY through). Each
//     forwarded connection is a pair of client streams (headers streamType error|data, port,
//     requestID); the data stream carries the bytes both ways, the error stream a message if
//     the port cannot be reached. Many pairs share one session.
//   - WebSocket (subprotocols v4.channel.k8s.io, v4.base64.channel.k8s.io, or none): one
//     connection per `port` query parameter, opened at once; channels 2i (data) and 2i+1
//     (error) for the i-th port, each starting with the port as two little-endian bytes.
// As containerd's port forward: once one direction of a connection ends, the other gets one
// second to end too, then the connection is closed (here: one second without data, so a large
// answer to a half-closed request is not cut). The client's end of data (SPDY FIN) is passed
// on as a half-close of the pod's socket.
// One thread per session (the connection's), poll()-driven.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/kubelet_exec.h"
#include "agent/kubelet_server_http.h"
#include "base/fd.h"
#include "base/result.h"

namespace agent::kserver {

// Connects to the pod's port (cri::RuntimeService::PortForward on the pod's sandbox).
using PortDialer = std::function<base::Result<base::UniqueFd>(uint16_t port)>;

struct PortForwardTarget {
  std::string pod;  // named in error messages (the kubelet's streaming server: the sandbox id)
  std::string uid;
  PortDialer dial;
};

// SPDY: X-Stream-Protocol-Version must offer portforward.k8s.io (httpstream.Handshake).
tl::expected<std::string, HandshakeError> CheckSpdyPortForwardHandshake(const HttpRequest& req);

struct WsPortForwardHandshake {
  WebSocketHandshake ws;
  std::vector<uint16_t> ports;
};
// WebSocket: the opening handshake, the subprotocol, and the `port` query parameters
// (portforward.NewV4Options: at least one, each 1-65535).
tl::expected<WsPortForwardHandshake, HandshakeError> CheckWsPortForwardHandshake(
    const HttpRequest& req);

struct PortForwardResult {
  int connections = 0;  // forwarded connections opened to the pod
  int failed = 0;       // pairs answered with an error
  bool idle_timeout = false;
};

// Runs a session to its end (the client closes, or the server stops) over `conn`, already
// switched to SPDY/3.1.
PortForwardResult ServeSpdyPortForward(RawConnection& conn, const PortForwardTarget& target);

// Runs a session over `conn`, already switched to WebSocket: until every port's connection has
// ended (then a close frame) or the client closes.
PortForwardResult ServeWebSocketPortForward(RawConnection& conn,
                                            const WsPortForwardHandshake& handshake,
                                            const PortForwardTarget& target);

}  // namespace agent::kserver
