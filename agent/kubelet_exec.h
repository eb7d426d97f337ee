#pragma once
// /exec on the kubelet API (internal to the kubelet server): the upgrade handshakes of an exec
// request and the pump between a cri::ExecSession's pipes and the streaming protocol on the
// upgraded connection. Two transports, as the kubelet's streaming server has:
//   - WebSocket with the channel.k8s.io subprotocols (v5 from kubectl 1.30+ through an API
//     server that passes the upgrade on, v4 and older from other clients);
//   - SPDY/3.1 with X-Stream-Protocol-Version v4/v3/v2.channel.k8s.io (kubectl's fallback, and
//     what a real kube-apiserver >= 1.30 speaks to the kubelet when it translates a v5
//     WebSocket client's session).
// One thread per session (the connection's), poll()-driven, so the TLS stream is only ever
// touched from one thread.
//
// WebSocket session (as the kubelet's ServeExec and the API server's v5 server):
//   101 -> an empty message on the lowest requested output channel -> stdout/stderr messages as
//   the command writes, stdin messages into its stdin (v5: [255,0] closes it) -> after both
//   output pipes end: the Status on channel 3 -> close frame 1000 -> wait for the client to
//   close (so nothing still in flight is reset away). Pings are answered.
// SPDY session: 101 -> the client opens its streams (SYN_STREAM, header streamtype = error,
//   stdin, stdout, stderr), each answered with SYN_REPLY; once all are there, DATA frames carry
//   the streams; the client's FIN on stdin closes it -> the Status on the error stream -> FIN on
//   every stream -> GOAWAY -> wait for the client to close.
// A client that goes away kills the command.
#include <chrono>
#include <functional>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "agent/exec_protocol.h"
#include "agent/kubelet_server_http.h"
#include "agent/spdy_protocol.h"
#include "cri/runtime_service.h"

namespace agent::kserver {

struct HandshakeError {
  int status = 400;
  std::string message;
};

// ---- WebSocket ----

struct WebSocketHandshake {
  execproto::Negotiated protocol;
  std::string accept;  // Sec-WebSocket-Accept
};

// Upgrade: websocket and Connection: ...upgrade... (wsstream.IsWebSocketRequest).
bool IsWebSocketRequest(const HttpRequest& req);

// The opening handshake's checks (GET, version 13, a key): the Sec-WebSocket-Accept value.
tl::expected<std::string, HandshakeError> CheckWebSocketOpening(const HttpRequest& req);

// Validates the opening handshake (RFC 6455 4.2.1) and negotiates the subprotocol; a client
// offering only unknown subprotocols gets 403 as from the kubelet (so kubectl falls back).
tl::expected<WebSocketHandshake, HandshakeError> CheckWebSocketHandshake(const HttpRequest& req);

// Headers of the 101 response.
std::vector<std::string> WebSocketUpgradeHeaders(const WebSocketHandshake& h);

// ---- SPDY/3.1 ----

enum class SpdyProtocol { kV2, kV3, kV4 };

struct SpdyHandshake {
  SpdyProtocol protocol = SpdyProtocol::kV4;
  std::string name;  // "v4.channel.k8s.io"
};

// Upgrade: SPDY/3.1 and Connection: ...upgrade...
bool IsSpdyRequest(const HttpRequest& req);

// httpstream.Handshake: the first X-Stream-Protocol-Version (client order) in `supported`.
tl::expected<std::string, HandshakeError> NegotiateSpdyProtocol(
    const HttpRequest& req, const std::vector<std::string>& supported);

// For exec: v4/v3/v2.channel.k8s.io.
tl::expected<SpdyHandshake, HandshakeError> CheckSpdyHandshake(const HttpRequest& req);

std::vector<std::string> SpdyUpgradeHeaders(const SpdyHandshake& h);

// ---- sessions ----

// The client side shared by the exec and port-forward pumps: writes that notice a peer that is
// gone, non-blocking reads handed to OnBytes, and the linger after the end of a session.
class StreamSession {
 public:
  explicit StreamSession(RawConnection& conn) : conn_(conn) {}
  virtual ~StreamSession() = default;

 protected:
  virtual void OnBytes(std::string_view data) = 0;  // the client's bytes, in order
  bool Write(std::string_view bytes);                // false once the client is gone
  void ReadConn();  // what is there now, to OnBytes; the end of stream or an error: gone
  // After the end of a session: waits up to `timeout` for the client to close (it does once it
  // has read everything), still reading what it sends; closing first could reset the
  // connection while output is in flight.
  void Linger(std::chrono::milliseconds timeout);
  void PeerDone() { peer_done_ = true; }  // the client ended the session
  void Broken() { gone_ = true; }         // protocol error: stop talking
  // SPDY sessions: feeds `data` to `parser`; pings are answered, the client's GOAWAY ends the
  // session, other frames go to `handle`; a protocol error is logged under `what`, answered
  // with GOAWAY and ends the session.
  void FeedSpdy(spdy::FrameParser& parser, std::string_view data, uint32_t last_stream_id,
                const char* what, const std::function<void(spdy::Frame)>& handle);

  // WebSocket sessions: feeds `data` to `parser`; pings are answered, the client's close is
  // echoed (its session is then over), data messages go to `on_data`; a protocol error is
  // logged under `what` and answered with a close frame naming it.
  void FeedWebSocket(execproto::FrameParser& parser, std::string_view data, const char* what,
                     const std::function<void(execproto::Message)>& on_data);
  void SendWsClose(uint16_t code, std::string_view reason);  // once per session

  RawConnection& conn_;
  bool gone_ = false;       // the connection broke, or we stopped talking
  bool peer_done_ = false;  // the client closed the session

 private:
  bool ws_close_sent_ = false;
};

struct ExecSessionResult {
  base::Result<int> exit_code = 0;  // the command's, or why it could not run
  bool client_gone = false;         // the client left before the end (the command was killed)
};

// Runs `session` to its end over `conn` (already switched to WebSocket).
ExecSessionResult ServeWebSocketExec(RawConnection& conn, execproto::StreamProtocol protocol,
                                     const execproto::ExecOptions& options,
                                     cri::ExecSession& session);

// Runs `session` to its end over `conn` (already switched to SPDY/3.1).
ExecSessionResult ServeSpdyExec(RawConnection& conn, SpdyProtocol protocol,
                                const execproto::ExecOptions& options, cri::ExecSession& session);

}  // namespace agent::kserver
