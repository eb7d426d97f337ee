#include "agent/kubelet_portforward.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "agent/exec_protocol.h"
#include "agent/spdy_protocol.h"
#include "base/log.h"
#include "base/strings.h"

namespace agent::kserver {
namespace {

using Clock = std::chrono::steady_clock;
using execproto::Message;
using execproto::Opcode;

constexpr size_t kReadChunk = 32 * 1024;
// Stop reading the client while this much of its data waits for the pods' sockets
// (backpressure for the whole session, as spdystream's per-connection frame loop gives).
constexpr size_t kMaxPendingToPods = 4 << 20;
// The kubelet's streamCreationTimeout: both streams of a request must come within it.
constexpr auto kStreamCreationTimeout = std::chrono::seconds(30);
// containerd: once one direction of a connection ends, the other gets this long.
constexpr auto kCloseGrace = std::chrono::seconds(1);
// The kubelet's streamingConnectionIdleTimeout default.
constexpr auto kIdleTimeout = std::chrono::hours(4);
// After the end of a WebSocket session: how long the client may take to close.
constexpr auto kLingerTimeout = std::chrono::seconds(60);

// One forwarded connection: the client's side of it and the pod's socket.
struct Pair {
  std::string request_id;
  uint16_t port = 0;
  Clock::time_point created = Clock::now();
  // SPDY: the client's stream ids (0 = not there yet); WebSocket: channels 2i and 2i+1.
  uint32_t data_id = 0;
  uint32_t error_id = 0;
  bool have_data = false;
  bool have_error = false;
  bool started = false;     // dialled (successfully or not)
  base::UniqueFd sock;      // the pod's connection
  std::string to_pod;       // client data not yet written to the pod
  bool client_eof = false;  // the client sends no more
  bool shut_wr = false;     // the pod's socket is half-closed
  bool pod_eof = false;     // the pod sends no more (data end sent to the client)
  std::optional<Clock::time_point> close_by;
};

// The protocol-independent part: pairs, dialling, the poll loop.
class ForwardPump : public StreamSession {
 public:
  ForwardPump(RawConnection& conn, const PortForwardTarget& t) : StreamSession(conn), target_(t) {}

  PortForwardResult Run();

 protected:
  virtual void SendData(Pair& p, std::string_view data) = 0;
  virtual void SendDataEnd(Pair& p) = 0;  // the pod's end of data
  virtual void SendError(Pair& p, std::string_view message) = 0;
  virtual void EndPair(Pair& p) = 0;  // the pair is over (its streams end)
  // WebSocket: every pair is over -> the session ends (true = leave the loop).
  virtual bool SessionOver() const { return false; }
  virtual void Finish() {}  // then lingers until the client closes (WebSocket)
  virtual bool Lingers() const { return false; }

  // Connects the pair to the pod (both streams are there). False: answered with an error.
  bool Start(Pair& p);
  // Client data for the pod, and its end.
  void ToPod(Pair& p, std::string_view data) {
    if (!p.client_eof && !p.shut_wr) p.to_pod.append(data);
  }
  void ClientEof(Pair& p) {
    p.client_eof = true;
    if (p.sock) OneDirectionEnded(p);
  }
  // Ends the pair now (client reset, timeouts): sends its end unless `quiet`.
  void Close(Pair& p, bool quiet);

  std::map<std::string, Pair> pairs_;  // by request id
  PortForwardResult result_;
  Clock::time_point last_activity_ = Clock::now();

 private:
  void OneDirectionEnded(Pair& p) {
    if (!p.close_by) p.close_by = Clock::now() + kCloseGrace;
  }
  // While the other direction still moves data, the grace period starts again (containerd
  // cuts at one second, which could truncate a large answer to a half-closed request).
  void StillMoving(Pair& p) {
    if (p.close_by) p.close_by = Clock::now() + kCloseGrace;
  }
  void FlushToPod(Pair& p);
  void ReadPod(Pair& p);
  bool Done(const Pair& p) const { return p.started && !p.sock; }
  void Reap();
  size_t PendingToPods() const {
    size_t n = 0;
    for (const auto& [id, p] : pairs_) n += p.to_pod.size();
    return n;
  }

  const PortForwardTarget& target_;
};

bool ForwardPump::Start(Pair& p) {
  p.started = true;
  auto sock = target_.dial(p.port);
  if (!sock) {
    ++result_.failed;
    std::string msg = "error forwarding port " + std::to_string(p.port) + " to pod " +
                      target_.pod + ", uid " + target_.uid + ": " + sock.error().message;
    base::log::Warn("port forward failed", {{"pod", target_.pod},
                                            {"port", static_cast<int>(p.port)},
                                            {"error", sock.error().message}});
    SendError(p, msg);
    EndPair(p);
    p.to_pod.clear();
    return false;
  }
  ++result_.connections;
  p.sock = std::move(*sock);
  if (p.client_eof) OneDirectionEnded(p);
  return true;
}

void ForwardPump::Close(Pair& p, bool quiet) {
  p.sock.reset();
  p.to_pod.clear();
  p.started = true;
  if (!quiet) EndPair(p);
}

void ForwardPump::FlushToPod(Pair& p) {
  while (p.sock && !p.to_pod.empty()) {
    ssize_t n = send(p.sock.get(), p.to_pod.data(), p.to_pod.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p.to_pod.erase(0, static_cast<size_t>(n));
      StillMoving(p);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // The pod's side is gone: what the client still sends is dropped.
    p.to_pod.clear();
    p.client_eof = true;
    OneDirectionEnded(p);
  }
  if (p.sock && p.to_pod.empty() && p.client_eof && !p.shut_wr) {
    p.shut_wr = true;
    shutdown(p.sock.get(), SHUT_WR);
  }
}

void ForwardPump::ReadPod(Pair& p) {
  char buf[kReadChunk];
  for (;;) {
    ssize_t n = recv(p.sock.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      last_activity_ = Clock::now();
      StillMoving(p);
      SendData(p, std::string_view(buf, static_cast<size_t>(n)));
      return;  // one chunk per wakeup keeps the pairs fair
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    break;  // end of stream, or reset
  }
  p.pod_eof = true;
  SendDataEnd(p);
  OneDirectionEnded(p);
}

void ForwardPump::Reap() {
  auto now = Clock::now();
  for (auto it = pairs_.begin(); it != pairs_.end();) {
    Pair& p = it->second;
    if (p.sock && ((p.pod_eof && p.client_eof && p.to_pod.empty()) ||
                   (p.close_by && now >= *p.close_by))) {
      Close(p, false);
    }
    if (!p.started && now - p.created >= kStreamCreationTimeout) {
      // httpStreamHandler.monitorStreamPair
      if (p.have_error) {
        SendError(p, "(conn=" + std::to_string(conn_.fd()) + ", request=" + p.request_id +
                         ") timed out waiting for streams");
      }
      Close(p, false);
    }
    if (Done(p)) {
      it = pairs_.erase(it);
    } else {
      ++it;
    }
  }
}

PortForwardResult ForwardPump::Run() {
  while (!gone_ && !peer_done_) {
    Reap();
    if (SessionOver()) break;
    for (auto& [id, p] : pairs_) FlushToPod(p);
    bool read_conn = PendingToPods() < kMaxPendingToPods;
    if (read_conn && conn_.HasBuffered()) {
      last_activity_ = Clock::now();
      ReadConn();
      continue;
    }
    std::vector<pollfd> fds;
    std::vector<Pair*> owners;
    fds.push_back({conn_.fd(), static_cast<short>(read_conn ? POLLIN : POLLRDHUP), 0});
    fds.push_back({conn_.stop_fd(), POLLIN, 0});
    auto now = Clock::now();
    auto wake = last_activity_ + kIdleTimeout;
    for (auto& [id, p] : pairs_) {
      if (!p.started) wake = std::min(wake, p.created + kStreamCreationTimeout);
      if (!p.sock) continue;
      short ev = 0;
      if (!p.pod_eof) ev |= POLLIN;
      if (!p.to_pod.empty()) ev |= POLLOUT;
      if (p.close_by) wake = std::min(wake, *p.close_by);
      if (!ev) continue;
      fds.push_back({p.sock.get(), ev, 0});
      owners.push_back(&p);
    }
    if (now >= last_activity_ + kIdleTimeout) {
      result_.idle_timeout = true;
      base::log::Info("port forward: idle timeout", {{"pod", target_.pod}});
      break;
    }
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
    int r = poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(ms, 0, 60000)));
    if (r < 0) {
      if (errno == EINTR) continue;
      base::log::Error("port forward: poll", {{"error", std::strerror(errno)}});
      break;
    }
    if (fds[1].revents) break;  // the server stops
    if (!read_conn && (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR))) break;
    if (read_conn && fds[0].revents) {
      last_activity_ = Clock::now();
      ReadConn();
    }
    for (size_t i = 0; i < owners.size(); ++i) {
      Pair& p = *owners[i];
      short re = fds[i + 2].revents;
      if (!re || !p.sock) continue;
      if (re & POLLOUT) FlushToPod(p);
      if ((re & (POLLIN | POLLHUP | POLLERR)) && !p.pod_eof && p.sock) ReadPod(p);
      if ((re & POLLERR) && !p.pod_eof) {  // reset by the pod with data still to write
        p.to_pod.clear();
        p.client_eof = p.pod_eof = true;
        SendDataEnd(p);
      }
    }
  }
  bool clean = !gone_ && !peer_done_;
  for (auto& [id, p] : pairs_) Close(p, !clean);
  pairs_.clear();
  if (clean && Lingers()) {
    Finish();
    Linger(kLingerTimeout);
  }
  return result_;
}

// ---- SPDY ------------------------------------------------------------------------------------

class SpdyForwardPump final : public ForwardPump {
 public:
  using ForwardPump::ForwardPump;

 private:
  struct StreamRef {
    std::string request_id;
    bool data = false;
  };

  void OnBytes(std::string_view data) override {
    FeedSpdy(parser_, data, last_stream_id_, "port forward",
             [this](spdy::Frame f) { HandleFrame(std::move(f)); });
  }
  void SendData(Pair& p, std::string_view data) override {
    Write(spdy::EncodeData(p.data_id, data, false));
  }
  void SendDataEnd(Pair& p) override { Fin(p.data_id); }
  void SendError(Pair& p, std::string_view message) override {
    if (p.have_error && !fin_sent_.count(p.error_id)) {
      Write(spdy::EncodeData(p.error_id, message, false));
    }
  }
  void EndPair(Pair& p) override {
    if (p.have_data) Fin(p.data_id);
    if (p.have_error) Fin(p.error_id);
    streams_.erase(p.data_id);
    streams_.erase(p.error_id);
  }
  void Fin(uint32_t id) {
    if (id == 0 || reset_.count(id) || !fin_sent_.insert(id).second) return;
    Write(spdy::EncodeData(id, "", true));
  }
  void HandleFrame(spdy::Frame f);
  void NewStream(const spdy::Frame& f);

  spdy::FrameParser parser_;
  spdy::HeaderCodec deflate_;
  uint32_t last_stream_id_ = 0;
  std::map<uint32_t, StreamRef> streams_;
  std::set<uint32_t> fin_sent_;
  std::set<uint32_t> reset_;  // streams the client reset: nothing more goes there
};

void SpdyForwardPump::NewStream(const spdy::Frame& f) {
  // httpStreamHandler.portForwardStreamReceived: a stream with a bad header is rejected.
  std::string port_text = spdy::HeaderValue(f.headers, "port");
  std::string type = spdy::HeaderValue(f.headers, "streamtype");
  std::string why;
  int port = 0;
  if (port_text.empty()) {
    why = "\"port\" header is required";
  } else {
    char* end = nullptr;
    errno = 0;
    long v = strtol(port_text.c_str(), &end, 10);
    if (errno || *end || v > 65535 || v < 0) {
      why = "unable to parse \"" + port_text + "\" as a port";
    } else if (v == 0) {
      why = "port \"" + port_text + "\" must be > 0";
    }
    port = static_cast<int>(v);
  }
  if (why.empty() && type != "error" && type != "data") {
    why = "invalid stream type \"" + type + "\"";
  }
  if (!why.empty()) {
    base::log::Warn("port forward: stream rejected", {{"error", why}});
    reset_.insert(f.stream_id);
    Write(spdy::EncodeRstStream(f.stream_id, spdy::kRstCancel));
    return;
  }
  auto reply = spdy::EncodeSynReply(deflate_, f.stream_id, {}, false);
  if (!reply) {
    Broken();
    return;
  }
  Write(*reply);
  // httpStreamHandler.requestID: old clients send none; the pair is then guessed from the ids.
  std::string request_id = spdy::HeaderValue(f.headers, "requestid");
  if (request_id.empty()) {
    request_id = std::to_string(type == "error" ? f.stream_id : f.stream_id - 2);
  }
  Pair& p = pairs_[request_id];
  if (p.request_id.empty()) {
    p.request_id = request_id;
    p.port = static_cast<uint16_t>(port);
  }
  bool data = type == "data";
  if ((data && p.have_data) || (!data && p.have_error) || p.started) {
    std::string msg = "error processing stream for request " + request_id + ": " + type +
                      " stream already assigned";
    base::log::Warn("port forward: " + msg);
    SendError(p, msg);
    return;
  }
  if (data) {
    p.data_id = f.stream_id;
    p.have_data = true;
  } else {
    p.error_id = f.stream_id;
    p.have_error = true;
  }
  streams_[f.stream_id] = StreamRef{request_id, data};
  if (data && (f.flags & spdy::kFlagFin)) ClientEof(p);
  if (p.have_data && p.have_error) Start(p);
}

void SpdyForwardPump::HandleFrame(spdy::Frame f) {
  if (!f.control) {
    auto it = streams_.find(f.stream_id);
    if (it == streams_.end()) return;
    auto pit = pairs_.find(it->second.request_id);
    if (pit == pairs_.end() || !it->second.data) return;  // the error stream carries nothing in
    ToPod(pit->second, f.data);
    if (f.flags & spdy::kFlagFin) ClientEof(pit->second);
    return;
  }
  switch (f.type) {
    case spdy::kSynStream:
      last_stream_id_ = std::max(last_stream_id_, f.stream_id);
      NewStream(f);
      return;
    case spdy::kRstStream: {
      reset_.insert(f.stream_id);
      auto it = streams_.find(f.stream_id);
      if (it == streams_.end()) return;
      auto pit = pairs_.find(it->second.request_id);
      if (pit != pairs_.end() && it->second.data) Close(pit->second, false);
      return;
    }
    default:
      return;  // SYN_REPLY, HEADERS, SETTINGS, WINDOW_UPDATE: nothing to do
  }
}

// ---- WebSocket -------------------------------------------------------------------------------

class WsForwardPump final : public ForwardPump {
 public:
  WsForwardPump(RawConnection& conn, const WsPortForwardHandshake& h, const PortForwardTarget& t)
      : ForwardPump(conn, t), proto_(h.ws.protocol.protocol) {
    for (size_t i = 0; i < h.ports.size(); ++i) {
      Pair& p = pairs_[std::to_string(i)];
      p.request_id = std::to_string(i);
      p.port = h.ports[i];
      p.data_id = static_cast<uint32_t>(2 * i);
      p.error_id = static_cast<uint32_t>(2 * i + 1);
      p.have_data = p.have_error = true;
      by_channel_[static_cast<uint8_t>(2 * i)] = p.request_id;
    }
  }

  // The port on both channels of each pair, then every connection is dialled.
  void Open() {
    for (auto& [id, p] : pairs_) {
      std::string port_bytes = {static_cast<char>(p.port & 0xff), static_cast<char>(p.port >> 8)};
      Channel(p.data_id, port_bytes);
      Channel(p.error_id, port_bytes);
    }
    for (auto& [id, p] : pairs_) Start(p);
  }

 private:
  void OnBytes(std::string_view data) override {
    FeedWebSocket(parser_, data, "port forward", [this](Message m) { HandleMessage(std::move(m)); });
  }
  void SendData(Pair& p, std::string_view data) override { Channel(p.data_id, data); }
  void SendDataEnd(Pair&) override {}  // the protocol has no end of a channel
  void SendError(Pair& p, std::string_view message) override { Channel(p.error_id, message); }
  void EndPair(Pair&) override {}
  bool SessionOver() const override { return pairs_.empty(); }
  bool Lingers() const override { return true; }
  void Finish() override { SendWsClose(execproto::kCloseNormal, ""); }

  void Channel(uint32_t channel, std::string_view data) {
    auto m = execproto::EncodeChannelMessage(proto_, static_cast<uint8_t>(channel), data);
    Write(execproto::EncodeFrame(m.opcode, m.payload, false));
  }
  void HandleMessage(Message m) {
    if (m.payload.empty()) return;
    auto cm = execproto::DecodeChannelMessage(proto_, m.payload);
    if (!cm) return;
    auto it = by_channel_.find(cm->channel);
    if (it == by_channel_.end()) return;  // error channels and unknown ones carry nothing in
    auto pit = pairs_.find(it->second);
    if (pit != pairs_.end()) ToPod(pit->second, cm->data);
  }

  execproto::StreamProtocol proto_;
  execproto::FrameParser parser_{execproto::FrameParser::Role::kServer};
  std::map<uint8_t, std::string> by_channel_;
};

}  // namespace

tl::expected<std::string, HandshakeError> CheckSpdyPortForwardHandshake(const HttpRequest& req) {
  return NegotiateSpdyProtocol(req, {"portforward.k8s.io"});
}

tl::expected<WsPortForwardHandshake, HandshakeError> CheckWsPortForwardHandshake(
    const HttpRequest& req) {
  auto fail = [](int status, std::string msg) {
    return tl::unexpected(HandshakeError{status, std::move(msg)});
  };
  WsPortForwardHandshake h;
  // portforward.NewV4Options
  for (const auto& [k, v] : req.query) {
    if (k != "port") continue;
    for (const auto& item : base::Split(v, ',', true)) {
      std::string s(base::Trim(item));
      char* end = nullptr;
      errno = 0;
      long port = strtol(s.c_str(), &end, 10);
      if (s.empty() || errno || *end || port < 0 || port > 65535) {
        return fail(400, "unable to parse \"" + s + "\" as a port: strconv.ParseUint: parsing \"" +
                             s + "\": invalid syntax");
      }
      if (port == 0) return fail(400, "port \"" + s + "\" must be > 0");
      h.ports.push_back(static_cast<uint16_t>(port));
    }
  }
  if (h.ports.empty()) return fail(400, "query parameter \"port\" is required");
  if (h.ports.size() > 127) return fail(400, "too many ports (at most 127 per session)");
  auto accept = CheckWebSocketOpening(req);
  if (!accept) return tl::unexpected(accept.error());
  h.ws.accept = *accept;
  auto offered = req.Headers("sec-websocket-protocol");
  std::vector<std::string> names;
  for (const auto& v : offered) {
    for (const auto& p : base::Split(v, ',', true)) names.emplace_back(base::Trim(p));
  }
  if (names.empty()) {
    h.ws.protocol = {execproto::StreamProtocol::kChannel, ""};
    return h;
  }
  for (const auto& n : names) {
    if (n == "v4.channel.k8s.io") {
      h.ws.protocol = {execproto::StreamProtocol::kV4Channel, n};
      return h;
    }
    if (n == "v4.base64.channel.k8s.io") {
      h.ws.protocol = {execproto::StreamProtocol::kV4Base64Channel, n};
      return h;
    }
  }
  return fail(403, "websocket: requested protocol(s) are not supported: [" +
                       base::Join(names, ", ") +
                       "]; supports [v4.channel.k8s.io v4.base64.channel.k8s.io]");
}

PortForwardResult ServeSpdyPortForward(RawConnection& conn, const PortForwardTarget& target) {
  SpdyForwardPump pump(conn, target);
  return pump.Run();
}

PortForwardResult ServeWebSocketPortForward(RawConnection& conn,
                                            const WsPortForwardHandshake& handshake,
                                            const PortForwardTarget& target) {
  WsForwardPump pump(conn, handshake, target);
  pump.Open();
  return pump.Run();
}

}  // namespace agent::kserver
