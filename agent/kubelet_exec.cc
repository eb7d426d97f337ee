#include "agent/kubelet_exec.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include "agent/spdy_protocol.h"
#include "base/log.h"
#include "base/strings.h"

namespace agent::kserver {
namespace {

using Clock = std::chrono::steady_clock;
using execproto::Message;
using execproto::Opcode;

// Stop reading the client while this much stdin waits for the command (backpressure).
constexpr size_t kMaxPendingStdin = 1 << 20;
constexpr size_t kReadChunk = 32 * 1024;
// After the end of the session: how long a client may take to read the rest and close. Only a
// client that neither reads nor closes is cut off (the API server waits 15 min; one thread here).
constexpr auto kLingerTimeout = std::chrono::seconds(60);
// SPDY: the kubelet's streamCreationTimeout.
constexpr auto kStreamCreationTimeout = std::chrono::seconds(30);

bool HeaderHasToken(const std::string& value, std::string_view token) {
  for (const auto& part : base::Split(value, ',', true)) {
    if (base::ToLower(base::Trim(part)) == token) return true;
  }
  return false;
}

void SetNonBlocking(int fd) {
  if (fd < 0) return;
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// The protocol-independent part: the command's pipes, the stdin buffer, the poll loop, the end.
class ExecPump : public StreamSession {
 public:
  ExecPump(RawConnection& conn, const execproto::ExecOptions& o, cri::ExecSession& s)
      : StreamSession(conn), opts_(o), session_(s) {}

  ExecSessionResult Run();

 protected:
  // true once output may be sent (SPDY: all of the client's streams exist).
  virtual bool Ready() const { return true; }
  // Until Ready(): when to give up.
  virtual std::optional<Clock::time_point> ReadyDeadline() const { return std::nullopt; }
  // Until Ready(): when it becomes true by itself (a poll wakeup).
  virtual std::optional<Clock::time_point> ReadyAt() const { return std::nullopt; }
  virtual void OnReady() {}
  virtual void Output(uint8_t channel, std::string_view data) = 0;
  virtual void OutputEnded(uint8_t channel) { (void)channel; }
  // The final status and the protocol's end of session (then the pump lingers).
  virtual void Finish(const base::Result<int>& exit_code) = 0;

  // For the transports.
  void QueueStdin(std::string_view data) {
    if (opts_.stdin && session_.stdin_fd() >= 0 && !stdin_eof_) stdin_buf_.append(data);
  }
  void StdinEof() { stdin_eof_ = true; }
  // Bytes of the client's resize channel/stream (TTY sessions; ignored otherwise, as wsstream).
  void ResizeBytes(std::string_view data) {
    if (!opts_.tty) return;
    resize_buf_.append(data);
    for (const auto& t : execproto::TakeTerminalSizes(&resize_buf_)) {
      session_.Resize(t.width, t.height);
    }
  }
  const execproto::ExecOptions& opts_;

 private:
  void FlushStdin();
  bool PumpOutput(int fd, uint8_t channel, bool wanted);

  cri::ExecSession& session_;
  std::string stdin_buf_;
  std::string resize_buf_;
  bool stdin_eof_ = false;
  bool ready_seen_ = false;
};

void ExecPump::FlushStdin() {
  int fd = session_.stdin_fd();
  if (fd < 0) {
    stdin_buf_.clear();
    return;
  }
  while (!stdin_buf_.empty()) {
    ssize_t n = write(fd, stdin_buf_.data(), stdin_buf_.size());
    if (n > 0) {
      stdin_buf_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // EPIPE: the command no longer reads its stdin; what the client sends is dropped.
    stdin_buf_.clear();
    session_.CloseStdin();
    return;
  }
  if (stdin_eof_ || !opts_.stdin) session_.CloseStdin();
}

bool ExecPump::PumpOutput(int fd, uint8_t channel, bool wanted) {
  char buf[kReadChunk];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    if (wanted) Output(channel, std::string_view(buf, static_cast<size_t>(n)));
    return true;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  return false;
}

ExecSessionResult ExecPump::Run() {
  int out = session_.stdout_fd(), err = session_.stderr_fd();
  SetNonBlocking(out);
  SetNonBlocking(err);
  SetNonBlocking(session_.stdin_fd());
  if (!opts_.stdin) session_.CloseStdin();
  bool timed_out = false;

  while ((out >= 0 || err >= 0) && !gone_ && !peer_done_) {
    if (!ready_seen_ && Ready()) {
      ready_seen_ = true;
      OnReady();
      continue;
    }
    FlushStdin();
    if (conn_.HasBuffered() && stdin_buf_.size() < kMaxPendingStdin) {
      ReadConn();
      continue;
    }
    pollfd p[5];
    int n = 0;
    int i_conn = -1, i_out = -1, i_err = -1;
    if (stdin_buf_.size() < kMaxPendingStdin) {
      i_conn = n;
      p[n++] = {conn_.fd(), POLLIN, 0};
    } else {
      p[n++] = {conn_.fd(), POLLRDHUP, 0};  // still notice a client that hangs up
    }
    // Until the client's streams exist the output waits in the pipes.
    if (out >= 0 && ready_seen_) {
      i_out = n;
      p[n++] = {out, POLLIN, 0};
    }
    if (err >= 0 && ready_seen_) {
      i_err = n;
      p[n++] = {err, POLLIN, 0};
    }
    if (!stdin_buf_.empty() && session_.stdin_fd() >= 0) {
      p[n++] = {session_.stdin_fd(), POLLOUT, 0};  // flushed at the top of the loop
    }
    int i_stop = n;
    p[n++] = {conn_.stop_fd(), POLLIN, 0};
    int timeout = -1;
    if (!ready_seen_) {
      if (auto d = ReadyDeadline()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(*d - Clock::now()).count();
        if (left <= 0) {
          timed_out = true;
          break;
        }
        timeout = static_cast<int>(left);
      }
      if (auto a = ReadyAt()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(*a - Clock::now()).count();
        left = std::max<int64_t>(left, 0);
        timeout = timeout < 0 ? static_cast<int>(left) : std::min(timeout, static_cast<int>(left));
      }
    }
    int r = poll(p, static_cast<nfds_t>(n), timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      base::log::Error("exec: poll", {{"error", std::strerror(errno)}});
      gone_ = true;
      break;
    }
    if (p[i_stop].revents) {
      gone_ = true;
      break;
    }
    if (i_conn < 0 && (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      gone_ = true;
      break;
    }
    if (i_conn >= 0 && p[i_conn].revents) ReadConn();
    if (i_out >= 0 && p[i_out].revents && !PumpOutput(out, execproto::kStdout, opts_.stdout)) {
      out = -1;
      OutputEnded(execproto::kStdout);
    }
    if (i_err >= 0 && p[i_err].revents && !PumpOutput(err, execproto::kStderr, opts_.stderr)) {
      err = -1;
      OutputEnded(execproto::kStderr);
    }
  }

  ExecSessionResult result;
  if (gone_ || peer_done_ || timed_out) {
    // The client left before the command ended (or the server stops, or the client never set
    // up its streams): as for the kubelet's dropped connections, the command is killed.
    if (out >= 0 || err >= 0) {
      session_.Kill();
      result.client_gone = true;
    }
  }
  result.exit_code = session_.Wait();
  if (timed_out) {
    base::log::Warn("exec: timed out waiting for the client to create streams");
    if (!result.exit_code) result.exit_code = base::Fail("timed out waiting for client streams");
    return result;
  }
  if (gone_ || peer_done_) return result;

  Finish(result.exit_code);
  Linger(kLingerTimeout);
  return result;
}

// ---- WebSocket -------------------------------------------------------------------------------

class WsExecPump final : public ExecPump {
 public:
  WsExecPump(RawConnection& conn, execproto::StreamProtocol p, const execproto::ExecOptions& o,
             cri::ExecSession& s)
      : ExecPump(conn, o, s), proto_(p), ready_at_(Clock::now() + kWsClientStreamSetup) {}

 private:
  // client-go's WebSocket client (kubectl) starts reading the connection and creating its
  // streams concurrently, and discards data for a stream it has not created yet ("Unknown
  // stream id 1, discarding message"): output sent right after the upgrade can be lost on a
  // busy machine. A real kubelet's runtime takes longer than that to start the command; this
  // runtime does not, so the first message waits a moment (the output waits in the pipes).
  static constexpr auto kWsClientStreamSetup = std::chrono::milliseconds(100);
  bool Ready() const override { return Clock::now() >= ready_at_; }
  std::optional<Clock::time_point> ReadyAt() const override { return ready_at_; }
  void OnReady() override {
    // Tells the client the streams are there (the kubelet and the API server do the same).
    SendChannel(opts_.stdout ? execproto::kStdout
                             : opts_.stderr ? execproto::kStderr : execproto::kError,
                "");
  }
  void OnBytes(std::string_view data) override;
  void Output(uint8_t channel, std::string_view data) override { SendChannel(channel, data); }
  void Finish(const base::Result<int>& exit_code) override {
    std::string status = execproto::FinalStatus(proto_, exit_code);
    if (!status.empty()) SendChannel(execproto::kError, status);
    SendWsClose(execproto::kCloseNormal, "");
  }

  void Send(const Message& m) { Write(execproto::EncodeFrame(m.opcode, m.payload, false)); }
  void SendChannel(uint8_t channel, std::string_view data) {
    Send(execproto::EncodeChannelMessage(proto_, channel, data));
  }
  void HandleMessage(Message m);

  execproto::StreamProtocol proto_;
  Clock::time_point ready_at_;
  execproto::FrameParser parser_{execproto::FrameParser::Role::kServer};
};

void WsExecPump::OnBytes(std::string_view data) {
  FeedWebSocket(parser_, data, "exec", [this](Message m) { HandleMessage(std::move(m)); });
}

void WsExecPump::HandleMessage(Message m) {
  if (m.payload.empty()) return;
  auto cm = execproto::DecodeChannelMessage(proto_, m.payload);
  if (!cm) {
    base::log::Debug("exec: dropping a malformed channel message", {{"error", cm.error().message}});
    return;
  }
  if (cm->channel == execproto::kCloseSignal) {
    if (static_cast<uint8_t>(cm->data[0]) == execproto::kStdin) StdinEof();
    return;
  }
  if (cm->channel == execproto::kStdin) QueueStdin(cm->data);
  if (cm->channel == execproto::kResize) ResizeBytes(cm->data);
  // Other channels the client may not write are ignored (as wsstream).
}

// ---- SPDY ------------------------------------------------------------------------------------

class SpdyExecPump final : public ExecPump {
 public:
  SpdyExecPump(RawConnection& conn, SpdyProtocol p, const execproto::ExecOptions& o,
               cri::ExecSession& s)
      : ExecPump(conn, o, s),
        proto_(p),
        deadline_(Clock::now() + kStreamCreationTimeout) {
    expected_ = 1 + (o.stdin ? 1 : 0) + (o.stdout ? 1 : 0) + (o.stderr ? 1 : 0);
  }

 private:
  bool Ready() const override { return received_ >= expected_; }
  std::optional<Clock::time_point> ReadyDeadline() const override { return deadline_; }
  void OnBytes(std::string_view data) override;
  void Output(uint8_t channel, std::string_view data) override {
    auto it = ids_.find(channel);
    if (it == ids_.end()) return;  // the client did not ask for it
    for (size_t at = 0; at < data.size(); at += kReadChunk) {
      Write(spdy::EncodeData(it->second, data.substr(at, kReadChunk), false));
    }
  }
  void OutputEnded(uint8_t channel) override { Fin(channel); }
  void Finish(const base::Result<int>& exit_code) override {
    auto proto = proto_ == SpdyProtocol::kV4 ? execproto::StreamProtocol::kV4Channel
                                             : execproto::StreamProtocol::kChannel;
    std::string status = execproto::FinalStatus(proto, exit_code);
    if (auto it = ids_.find(execproto::kError); it != ids_.end() && !status.empty()) {
      Write(spdy::EncodeData(it->second, status, false));
    }
    // Every stream ends from our side (the client waits for stdin's too), then the session.
    for (uint8_t ch : {execproto::kError, execproto::kStdout, execproto::kStderr,
                       execproto::kStdin, execproto::kResize}) {
      Fin(ch);
    }
    Write(spdy::EncodeGoAway(last_stream_id_, 0));
  }

  void Fin(uint8_t channel) {
    auto it = ids_.find(channel);
    if (it == ids_.end() || fin_sent_.count(channel)) return;
    fin_sent_[channel] = true;
    Write(spdy::EncodeData(it->second, "", true));
  }
  void HandleFrame(spdy::Frame f);

  SpdyProtocol proto_;
  spdy::FrameParser parser_;
  spdy::HeaderCodec deflate_;
  Clock::time_point deadline_;
  int expected_ = 1;
  int received_ = 0;
  uint32_t last_stream_id_ = 0;
  std::map<uint8_t, uint32_t> ids_;          // channel -> the client's stream id
  std::map<uint32_t, uint8_t> channel_of_;   // stream id -> channel
  std::map<uint8_t, bool> fin_sent_;
};

void SpdyExecPump::OnBytes(std::string_view data) {
  FeedSpdy(parser_, data, last_stream_id_, "exec", [this](spdy::Frame f) { HandleFrame(std::move(f)); });
}

void SpdyExecPump::HandleFrame(spdy::Frame f) {
  if (!f.control) {
    auto it = channel_of_.find(f.stream_id);
    if (it == channel_of_.end()) return;
    if (it->second == execproto::kStdin) {
      QueueStdin(f.data);
      if (f.flags & spdy::kFlagFin) StdinEof();
    }
    if (it->second == execproto::kResize) ResizeBytes(f.data);
    return;
  }
  switch (f.type) {
    case spdy::kSynStream: {
      static const std::map<std::string, uint8_t> kTypes = {
          {"error", execproto::kError},   {"stdin", execproto::kStdin},
          {"stdout", execproto::kStdout}, {"stderr", execproto::kStderr},
          {"resize", execproto::kResize}};
      last_stream_id_ = std::max(last_stream_id_, f.stream_id);
      std::string type = spdy::HeaderValue(f.headers, "streamtype");
      auto reply = spdy::EncodeSynReply(deflate_, f.stream_id, {}, false);
      if (!reply) {
        Broken();
        return;
      }
      Write(*reply);
      auto t = kTypes.find(type);
      if (t == kTypes.end() || ids_.count(t->second)) {
        base::log::Warn("exec: unexpected spdy stream", {{"streamType", type}});
        return;
      }
      ids_[t->second] = f.stream_id;
      channel_of_[f.stream_id] = t->second;
      if (t->second != execproto::kResize) ++received_;
      if (t->second == execproto::kStdin && (f.flags & spdy::kFlagFin)) StdinEof();
      return;
    }
    case spdy::kRstStream: {
      auto it = channel_of_.find(f.stream_id);
      if (it != channel_of_.end() && it->second == execproto::kStdin) StdinEof();
      return;
    }
    default:
      return;  // SYN_REPLY, HEADERS, SETTINGS, WINDOW_UPDATE: nothing to do
  }
}

}  // namespace

void StreamSession::SendWsClose(uint16_t code, std::string_view reason) {
  if (ws_close_sent_) return;
  ws_close_sent_ = true;
  Write(execproto::EncodeClose(code, reason, false));
}

void StreamSession::FeedWebSocket(execproto::FrameParser& parser, std::string_view data,
                                  const char* what,
                                  const std::function<void(execproto::Message)>& on_data) {
  parser.Feed(data);
  while (!peer_done_ && !gone_) {
    auto m = parser.Next();
    if (!m) {
      base::log::Warn(std::string(what) + ": websocket protocol error",
                      {{"error", m.error().message}});
      SendWsClose(static_cast<uint16_t>(m.error().code), m.error().message);
      Broken();
      return;
    }
    if (!*m) return;
    switch ((*m)->opcode) {
      case Opcode::kPing:
        Write(execproto::EncodeFrame(Opcode::kPong, (*m)->payload, false));
        break;
      case Opcode::kPong:
        break;
      case Opcode::kClose: {
        // Echo the code (RFC 6455 5.5.1); the client is done with the session.
        uint16_t code = execproto::kCloseNormal;
        const std::string& p = (*m)->payload;
        if (p.size() >= 2) {
          code = static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) |
                                       static_cast<uint8_t>(p[1]));
        }
        SendWsClose(code, "");
        PeerDone();
        return;
      }
      default:
        on_data(std::move(**m));
    }
  }
}

void StreamSession::FeedSpdy(spdy::FrameParser& parser, std::string_view data,
                             uint32_t last_stream_id, const char* what,
                             const std::function<void(spdy::Frame)>& handle) {
  parser.Feed(data);
  while (!gone_) {
    auto f = parser.Next();
    if (!f) {
      base::log::Warn(std::string(what) + ": spdy protocol error", {{"error", f.error().message}});
      Write(spdy::EncodeGoAway(last_stream_id, spdy::kRstProtocolError));
      Broken();
      return;
    }
    if (!*f) return;
    if ((*f)->control && (*f)->type == spdy::kPing) {
      if ((*f)->value & 1) Write(spdy::EncodePing((*f)->value));  // the client's (odd) ids
      continue;
    }
    if ((*f)->control && (*f)->type == spdy::kGoAway) {
      PeerDone();
      return;
    }
    handle(std::move(**f));
  }
}

bool StreamSession::Write(std::string_view bytes) {
  if (gone_) return false;
  if (!conn_.WriteAll(bytes)) gone_ = true;
  return !gone_;
}

void StreamSession::ReadConn() {
  char buf[kReadChunk];
  ssize_t n = conn_.ReadSome(buf, sizeof buf);
  if (n == 0) {
    gone_ = true;
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN) gone_ = true;
    return;
  }
  OnBytes(std::string_view(buf, static_cast<size_t>(n)));
}

void StreamSession::Linger(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!gone_ && !peer_done_) {
    if (!conn_.HasBuffered()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd p[2] = {{conn_.fd(), POLLIN, 0}, {conn_.stop_fd(), POLLIN, 0}};
      int r = poll(p, 2, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0 || p[1].revents) break;
    }
    ReadConn();
  }
}

bool IsWebSocketRequest(const HttpRequest& req) {
  return base::ToLower(req.Header("upgrade")) == "websocket" &&
         HeaderHasToken(req.Header("connection"), "upgrade");
}

tl::expected<std::string, HandshakeError> CheckWebSocketOpening(const HttpRequest& req) {
  auto fail = [](int status, std::string msg) {
    return tl::unexpected(HandshakeError{status, std::move(msg)});
  };
  if (req.method != "GET") {
    return fail(405, "websocket: the opening handshake must be a GET, not " + req.method);
  }
  if (req.Header("sec-websocket-version") != "13") {
    return fail(400, "websocket: unsupported version \"" + req.Header("sec-websocket-version") +
                         "\" (want 13)");
  }
  std::string key(base::Trim(req.Header("sec-websocket-key")));
  if (key.empty()) return fail(400, "websocket: missing Sec-WebSocket-Key");
  return execproto::WebSocketAccept(key);
}

tl::expected<WebSocketHandshake, HandshakeError> CheckWebSocketHandshake(const HttpRequest& req) {
  auto accept = CheckWebSocketOpening(req);
  if (!accept) return tl::unexpected(accept.error());
  auto proto = execproto::NegotiateSubprotocol(req.Headers("sec-websocket-protocol"));
  if (!proto) {
    return tl::unexpected(HandshakeError{
        403, "websocket: requested protocol(s) are not supported: [" +
                 base::Join(req.Headers("sec-websocket-protocol"), ", ") +
                 "]; supports [v5.channel.k8s.io v4.channel.k8s.io "
                 "v4.base64.channel.k8s.io channel.k8s.io base64.channel.k8s.io]"});
  }
  return WebSocketHandshake{*proto, *accept};
}

std::vector<std::string> WebSocketUpgradeHeaders(const WebSocketHandshake& h) {
  std::vector<std::string> out = {"Upgrade: websocket", "Connection: Upgrade",
                                  "Sec-WebSocket-Accept: " + h.accept};
  if (!h.protocol.name.empty()) out.push_back("Sec-WebSocket-Protocol: " + h.protocol.name);
  return out;
}

bool IsSpdyRequest(const HttpRequest& req) {
  return base::ToLower(req.Header("upgrade")).find("spdy/3.1") != std::string::npos &&
         HeaderHasToken(req.Header("connection"), "upgrade");
}

tl::expected<std::string, HandshakeError> NegotiateSpdyProtocol(
    const HttpRequest& req, const std::vector<std::string>& supported) {
  std::vector<std::string> offered;
  for (const auto& v : req.Headers("x-stream-protocol-version")) {
    for (const auto& p : base::Split(v, ',', true)) offered.emplace_back(base::Trim(p));
  }
  if (offered.empty()) {
    return tl::unexpected(
        HandshakeError{400, "unable to upgrade: X-Stream-Protocol-Version is required"});
  }
  for (const auto& o : offered) {
    if (std::find(supported.begin(), supported.end(), o) != supported.end()) return o;
  }
  return tl::unexpected(HandshakeError{
      403, "unable to upgrade: unable to negotiate protocol: client supports [" +
               base::Join(offered, " ") + "], server accepts [" + base::Join(supported, " ") +
               "]"});
}

tl::expected<SpdyHandshake, HandshakeError> CheckSpdyHandshake(const HttpRequest& req) {
  auto name = NegotiateSpdyProtocol(
      req, {"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"});
  if (!name) return tl::unexpected(name.error());
  if (*name == "v4.channel.k8s.io") return SpdyHandshake{SpdyProtocol::kV4, *name};
  if (*name == "v3.channel.k8s.io") return SpdyHandshake{SpdyProtocol::kV3, *name};
  return SpdyHandshake{SpdyProtocol::kV2, *name};
}

std::vector<std::string> SpdyUpgradeHeaders(const SpdyHandshake& h) {
  return {"Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: " + h.name};
}

ExecSessionResult ServeWebSocketExec(RawConnection& conn, execproto::StreamProtocol protocol,
                                     const execproto::ExecOptions& options,
                                     cri::ExecSession& session) {
  WsExecPump pump(conn, protocol, options, session);
  return pump.Run();
}

ExecSessionResult ServeSpdyExec(RawConnection& conn, SpdyProtocol protocol,
                                const execproto::ExecOptions& options, cri::ExecSession& session) {
  SpdyExecPump pump(conn, protocol, options, session);
  return pump.Run();
}

}  // namespace agent::kserver
