#pragma once
// The wire protocol of `kubectl exec` over WebSocket, without any I/O: RFC 6455 framing, the
// channel.k8s.io subprotocols that multiplex stdin/stdout/stderr/error/resize in one connection,
// and the metav1.Status that carries the command's exit code on the error channel.
// Used by the kubelet server (kubelet_exec.cc) and by cubectl (the client side).
//
// References (kubernetes/kubernetes):
//   staging/src/k8s.io/apimachinery/pkg/util/remotecommand/constants.go  (names, channel 255)
//   staging/src/k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go (framing of channels)
//   pkg/kubelet/cri/streaming/remotecommand/{websocket,httpstream,exec}.go (kubelet side)
//   staging/src/k8s.io/apiserver/pkg/util/proxy/websocket.go             (v5 server side)
//   staging/src/k8s.io/client-go/tools/remotecommand/{websocket,v4,v5}.go (kubectl side)
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace agent::execproto {

// Channel numbers: the first byte of every message (POSIX fd numbers for the std streams).
enum Channel : uint8_t {
  kStdin = 0,
  kStdout = 1,
  kStderr = 2,
  kError = 3,   // server -> client: the final Status
  kResize = 4,  // client -> server: {"Width":W,"Height":H} (TTY only)
  kCloseSignal = 255,  // v5: [255, ch] = the sender will write no more on channel ch
};

// WebSocket subprotocols (Sec-WebSocket-Protocol) the kubelet and the API server accept.
enum class StreamProtocol {
  kChannel,          // "" or "channel.k8s.io": binary, Status as text on failure only
  kBase64Channel,    // "base64.channel.k8s.io": text frames, '0'+ch then base64
  kV4Channel,        // "v4.channel.k8s.io": binary, Status JSON
  kV4Base64Channel,  // "v4.base64.channel.k8s.io"
  kV5Channel,        // "v5.channel.k8s.io": v4 + the close signal (stdin half-close)
};

struct Negotiated {
  StreamProtocol protocol = StreamProtocol::kChannel;
  std::string name;  // echoed in Sec-WebSocket-Protocol ("" = header omitted)
};

// Picks the first protocol in the client's order that is supported. `offered` holds the
// header's values (repeated headers and comma-separated lists both work). No header at all
// means the unnamed binary protocol. nullopt: none supported (the kubelet answers 403).
std::optional<Negotiated> NegotiateSubprotocol(const std::vector<std::string>& offered);

bool IsBase64(StreamProtocol p);
bool SendsStatusJson(StreamProtocol p);  // v4, v5
bool HasCloseSignal(StreamProtocol p);   // v5

// ---- RFC 6455 framing ----------------------------------------------------------------------

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close status codes used here.
constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseGoingAway = 1001;
constexpr uint16_t kCloseProtocolError = 1002;
constexpr uint16_t kCloseTooBig = 1009;

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(sha1(key + RFC 6455 GUID)).
std::string WebSocketAccept(std::string_view key);

// One unfragmented frame (FIN set). Clients must mask (mask = true picks a random key).
std::string EncodeFrame(Opcode op, std::string_view payload, bool mask);
std::string EncodeClose(uint16_t code, std::string_view reason, bool mask);

// A complete data message (fragments joined) or a control frame.
struct Message {
  Opcode opcode = Opcode::kBinary;
  std::string payload;
};

// Incremental parser of the peer's frames. A server requires masked frames, a client unmasked
// ones (RFC 6455 5.1). Errors carry the close code to send in Error::code.
class FrameParser {
 public:
  enum class Role { kServer, kClient };
  explicit FrameParser(Role role, size_t max_message = 16 << 20)
      : role_(role), max_message_(max_message) {}

  void Feed(std::string_view data) { buf_.append(data); }
  // The next message, nullopt when more bytes are needed.
  base::Result<std::optional<Message>> Next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  Role role_;
  size_t max_message_;
  std::string buf_;
  size_t pos_ = 0;
  bool in_fragmented_ = false;
  Opcode fragmented_op_ = Opcode::kBinary;
  std::string fragments_;
};

// ---- channels --------------------------------------------------------------------------------

struct ChannelMessage {
  uint8_t channel = 0;
  std::string data;  // for kCloseSignal: the closed channel's number (one byte)
};

// A message on `channel` in protocol `p`: binary [ch]+data, or text '0'+ch + base64(data).
Message EncodeChannelMessage(StreamProtocol p, uint8_t channel, std::string_view data);
// v5's close signal for `channel`.
Message EncodeCloseSignal(uint8_t channel);
// The channel and data of a received data message. An empty payload is an error (callers skip
// empty messages first, as wsstream does).
base::Result<ChannelMessage> DecodeChannelMessage(StreamProtocol p, std::string_view payload);

std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);

// ---- the error channel ---------------------------------------------------------------------

// metav1.Status as json.Marshal writes it (field order of the Go struct).
std::string StatusSuccessJson();
// NonZeroExitCode with the ExitCode cause, as the kubelet's ServeExec writes it.
std::string StatusExitCodeJson(int code);
// apierrors.NewInternalError(err): "Internal error occurred: <message>", code 500.
std::string StatusInternalErrorJson(std::string_view message);
// What the error channel carries at the end in protocol `p` ("" = nothing): JSON for v4/v5,
// the Status message text on failure for the older ones.
std::string FinalStatus(StreamProtocol p, const base::Result<int>& exit_code);
// Client side (client-go's errorDecoderV4): 0 for Success, the code for NonZeroExitCode,
// an error with the Status message for anything else.
base::Result<int> ExitCodeFromStatus(std::string_view json);

// ---- terminal size -------------------------------------------------------------------------

// remotecommand.TerminalSize as the client sends it on the resize channel/stream: JSON objects
// {"Width":W,"Height":H}, one after another. Takes the complete objects off the front of `buf`
// (a partial one stays for the next bytes); malformed objects are dropped.
struct TerminalSize {
  unsigned width = 0;
  unsigned height = 0;
};
std::vector<TerminalSize> TakeTerminalSizes(std::string* buf);

// ---- request ---------------------------------------------------------------------------------

// The kubelet's /exec query: command=... (repeated), stdin/stdout/stderr/tty = "1".
struct ExecOptions {
  std::vector<std::string> command;
  bool stdin = false;
  bool stdout = false;
  bool stderr = false;
  bool tty = false;
};

// As remotecommand.NewOptions: tty drops stderr; at least one stream; plus a command.
base::Result<ExecOptions> ParseExecOptions(
    const std::vector<std::pair<std::string, std::string>>& query);

}  // namespace agent::execproto
