#include "agent/cubectl_exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>

#include "agent/exec_protocol.h"
#include "base/fd.h"
#include "base/strings.h"

namespace agent::cubectl {
namespace {

namespace ep = execproto;

constexpr size_t kChunk = 32 * 1024;
constexpr size_t kMaxQueued = 1 << 20;  // stop reading our stdin while this much waits

int Error(const std::string& msg) {
  fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

bool WriteFd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, -1);
      continue;
    }
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string RandomKey() {
  std::random_device rd;
  std::string raw(16, '\0');
  for (auto& c : raw) c = static_cast<char>(rd() & 0xff);
  return ep::Base64Encode(raw);
}

struct Head {
  int status = 0;
  std::string accept, protocol;
  size_t content_length = 0;
  bool has_length = false;
};

Head ParseHead(const std::string& head) {
  Head h;
  auto lines = base::Split(head, '\n');
  if (!lines.empty()) {
    auto parts = base::Split(lines[0], ' ', true);
    if (parts.size() >= 2) h.status = atoi(parts[1].c_str());
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = base::Trim(lines[i]);
    size_t colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = base::ToLower(l.substr(0, colon));
    std::string value(base::Trim(l.substr(colon + 1)));
    if (name == "sec-websocket-accept") h.accept = value;
    if (name == "sec-websocket-protocol") h.protocol = value;
    if (name == "content-length") {
      h.content_length = static_cast<size_t>(strtoull(value.c_str(), nullptr, 10));
      h.has_length = true;
    }
  }
  return h;
}

// Our terminal in raw mode for the session (the remote terminal does the line editing and
// echo, as kubectl exec -t), restored however we leave.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (tcgetattr(fd, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    active_ = tcsetattr(fd, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// remotecommand.TerminalSize of our terminal, or "" when there is none.
std::string TerminalSizeJson() {
  winsize ws{};
  for (int fd : {STDOUT_FILENO, STDIN_FILENO}) {
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      return "{\"Width\":" + std::to_string(ws.ws_col) + ",\"Height\":" +
             std::to_string(ws.ws_row) + "}";
    }
  }
  return "";
}

}  // namespace

int RunExec(const ExecArgs& a) {
  signal(SIGPIPE, SIG_IGN);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (a.socket.size() >= sizeof sun.sun_path) return Error("socket path too long: " + a.socket);
  std::memcpy(sun.sun_path, a.socket.c_str(), a.socket.size() + 1);
  base::UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return Error(std::string("socket: ") + strerror(errno));
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    int e = errno;
    std::string hint = "is cubelet running?";
    if (e == EACCES) hint = "the socket is root-only; " + hint;
    return Error("cannot connect to cubelet at " + a.socket + ": " + strerror(e) + "; " + hint);
  }

  std::string target = "/exec/" + base::PercentEncode(a.ns) + "/" + base::PercentEncode(a.pod) + "/" +
                       base::PercentEncode(a.container) + "?";
  for (const auto& c : a.command) target += "command=" + base::PercentEncode(c) + "&";
  if (a.stdin) target += "stdin=1&";
  // As kubectl: -t without a terminal on stdin is dropped (with the same warning).
  bool tty = a.tty && isatty(STDIN_FILENO);
  if (a.tty && !tty) fprintf(stderr, "Unable to use a TTY - input is not a terminal or the right kind of file\n");
  if (tty) target += "tty=1&";
  target += "stdout=1&stderr=1";
  std::string key = RandomKey();
  std::string req = "GET " + target +
                    " HTTP/1.1\r\nHost: cubelet\r\nUser-Agent: cubectl\r\n"
                    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: " +
                    key + "\r\nSec-WebSocket-Protocol: " + "v5.channel.k8s.io" + "\r\n\r\n";
  if (!WriteFd(sock.get(), req)) return Error(std::string("send to cubelet: ") + strerror(errno));

  // Response head.
  std::string in;
  char buf[kChunk];
  size_t end;
  while ((end = in.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error("cubelet closed the connection before answering");
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > 64 * 1024) return Error("cubelet sent an oversized response head");
  }
  Head head = ParseHead(in.substr(0, end));
  std::string rest = in.substr(end + 4);
  if (head.status != 101) {
    while (!head.has_length || rest.size() < head.content_length) {
      ssize_t n = read(sock.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      rest.append(buf, static_cast<size_t>(n));
    }
    if (head.has_length && rest.size() > head.content_length) rest.resize(head.content_length);
    while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.pop_back();
    return Error("cubelet answered " + std::to_string(head.status) + ": " + rest);
  }
  if (head.accept != ep::WebSocketAccept(key)) {
    return Error("cubelet's websocket handshake is invalid (Sec-WebSocket-Accept)");
  }
  auto proto = ep::NegotiateSubprotocol({head.protocol});
  if (!proto) return Error("cubelet chose an unknown subprotocol \"" + head.protocol + "\"");

  ep::FrameParser parser(ep::FrameParser::Role::kClient);
  parser.Feed(rest);
  int fl = fcntl(sock.get(), F_GETFL);
  fcntl(sock.get(), F_SETFL, fl | O_NONBLOCK);
  std::string out_q;  // frames for cubelet not yet written
  auto queue = [&](const ep::Message& m) {
    out_q += ep::EncodeFrame(m.opcode, m.payload, true);
  };
  // With a terminal: raw mode, its size now and on every SIGWINCH (through a signalfd).
  std::optional<RawTerminal> raw;
  base::UniqueFd winch;
  if (tty) {
    if (a.stdin) raw.emplace(STDIN_FILENO);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    winch.reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (auto size = TerminalSizeJson(); !size.empty()) {
      queue(ep::EncodeChannelMessage(proto->protocol, ep::kResize, size));
    }
  }
  bool stdin_open = a.stdin, done = false, closed_by_server = false;
  std::string status;
  auto handle = [&]() -> bool {  // false on a protocol error
    for (;;) {
      auto m = parser.Next();
      if (!m) {
        Error("from cubelet: " + m.error().message);
        return false;
      }
      if (!*m) return true;
      ep::Message& msg = **m;
      if (msg.opcode == ep::Opcode::kPing) {
        queue({ep::Opcode::kPong, msg.payload});
      } else if (msg.opcode == ep::Opcode::kClose) {
        out_q += ep::EncodeClose(ep::kCloseNormal, "", true);
        closed_by_server = true;
        done = true;
        return true;
      } else if (msg.opcode == ep::Opcode::kText || msg.opcode == ep::Opcode::kBinary) {
        if (msg.payload.empty()) continue;
        auto cm = ep::DecodeChannelMessage(proto->protocol, msg.payload);
        if (!cm) continue;
        if (cm->channel == ep::kStdout) WriteFd(STDOUT_FILENO, cm->data);
        if (cm->channel == ep::kStderr) WriteFd(STDERR_FILENO, cm->data);
        if (cm->channel == ep::kError) status += cm->data;
      }
    }
  };
  if (!handle()) return 1;
  while (!done || !out_q.empty()) {
    pollfd p[3];
    int n = 0;
    p[n++] = {sock.get(), static_cast<short>((done ? 0 : POLLIN) | (out_q.empty() ? 0 : POLLOUT)),
              0};
    int i_stdin = -1, i_winch = -1;
    if (stdin_open && !done && out_q.size() < kMaxQueued) {
      i_stdin = n;
      p[n++] = {STDIN_FILENO, POLLIN, 0};
    }
    if (winch && !done) {
      i_winch = n;
      p[n++] = {winch.get(), POLLIN, 0};
    }
    if (poll(p, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      return Error(std::string("poll: ") + strerror(errno));
    }
    if (p[0].revents & POLLOUT) {
      ssize_t w = send(sock.get(), out_q.data(), out_q.size(), MSG_NOSIGNAL);
      if (w > 0) out_q.erase(0, static_cast<size_t>(w));
      if (w < 0 && errno != EAGAIN && errno != EINTR) {
        out_q.clear();
        done = true;
      }
    }
    if (!done && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(sock.get(), buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        done = true;
        out_q.clear();
      } else if (r > 0) {
        parser.Feed(std::string_view(buf, static_cast<size_t>(r)));
        if (!handle()) return 1;
      }
    }
    if (i_winch >= 0 && p[i_winch].revents) {
      signalfd_siginfo si;
      while (read(winch.get(), &si, sizeof si) == sizeof si) {
      }
      if (auto size = TerminalSizeJson(); !size.empty()) {
        queue(ep::EncodeChannelMessage(proto->protocol, ep::kResize, size));
      }
    }
    if (i_stdin >= 0 && p[i_stdin].revents) {
      ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
      if (r > 0) {
        queue(ep::EncodeChannelMessage(proto->protocol, ep::kStdin,
                                       std::string_view(buf, static_cast<size_t>(r))));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        stdin_open = false;
        if (ep::HasCloseSignal(proto->protocol)) queue(ep::EncodeCloseSignal(ep::kStdin));
      }
    }
  }
  raw.reset();  // our terminal back to normal before any message
  if (!closed_by_server && status.empty()) {
    return Error("the connection to cubelet ended before the command's status arrived");
  }
  if (!ep::SendsStatusJson(proto->protocol)) {
    if (status.empty()) return 0;
    return Error(status);
  }
  auto code = ep::ExitCodeFromStatus(status);
  if (!code) return Error(code.error().message);
  if (*code != 0) fprintf(stderr, "command terminated with exit code %d\n", *code);
  return *code;
}

}  // namespace agent::cubectl
