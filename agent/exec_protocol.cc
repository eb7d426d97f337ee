#include "agent/exec_protocol.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "base/strings.h"

namespace agent::execproto {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct Known {
  std::string_view name;
  StreamProtocol protocol;
};
constexpr Known kKnown[] = {
    {"v5.channel.k8s.io", StreamProtocol::kV5Channel},
    {"v4.channel.k8s.io", StreamProtocol::kV4Channel},
    {"v4.base64.channel.k8s.io", StreamProtocol::kV4Base64Channel},
    {"channel.k8s.io", StreamProtocol::kChannel},
    {"base64.channel.k8s.io", StreamProtocol::kBase64Channel},
};

bool IsControl(Opcode op) { return static_cast<uint8_t>(op) >= 0x8; }

uint32_t RandomMask() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return static_cast<uint32_t>(gen());
}

}  // namespace

std::optional<Negotiated> NegotiateSubprotocol(const std::vector<std::string>& offered) {
  std::vector<std::string> names;
  for (const auto& v : offered) {
    for (const auto& part : base::Split(v, ',', true)) {
      std::string_view t = base::Trim(part);
      if (!t.empty()) names.emplace_back(t);
    }
  }
  if (names.empty()) return Negotiated{StreamProtocol::kChannel, ""};
  for (const auto& n : names) {
    for (const auto& k : kKnown) {
      if (n == k.name) return Negotiated{k.protocol, n};
    }
  }
  return std::nullopt;
}

bool IsBase64(StreamProtocol p) {
  return p == StreamProtocol::kBase64Channel || p == StreamProtocol::kV4Base64Channel;
}

bool SendsStatusJson(StreamProtocol p) {
  return p == StreamProtocol::kV4Channel || p == StreamProtocol::kV4Base64Channel ||
         p == StreamProtocol::kV5Channel;
}

bool HasCloseSignal(StreamProtocol p) { return p == StreamProtocol::kV5Channel; }

// ---- framing ---------------------------------------------------------------------------------

std::string WebSocketAccept(std::string_view key) {
  std::string in = std::string(base::Trim(key)) + std::string(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), digest, &len, EVP_sha1(), nullptr);
  return Base64Encode(std::string_view(reinterpret_cast<char*>(digest), len));
}

std::string EncodeFrame(Opcode op, std::string_view payload, bool mask) {
  std::string f;
  f.reserve(payload.size() + 14);
  f += static_cast<char>(0x80 | static_cast<uint8_t>(op));
  uint8_t mask_bit = mask ? 0x80 : 0;
  size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(mask_bit | n);
  } else if (n <= 0xffff) {
    f += static_cast<char>(mask_bit | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) f += static_cast<char>((n >> shift) & 0xff);
  }
  if (!mask) {
    f.append(payload);
    return f;
  }
  uint32_t m = RandomMask();
  char key[4];
  std::memcpy(key, &m, 4);
  f.append(key, 4);
  size_t start = f.size();
  f.append(payload);
  for (size_t i = 0; i < n; ++i) f[start + i] = static_cast<char>(f[start + i] ^ key[i & 3]);
  return f;
}

std::string EncodeClose(uint16_t code, std::string_view reason, bool mask) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xff);
  p.append(reason.substr(0, 123));
  return EncodeFrame(Opcode::kClose, p, mask);
}

base::Result<std::optional<Message>> FrameParser::Next() {
  for (;;) {
    std::string_view b(buf_);
    b.remove_prefix(pos_);
    if (b.size() < 2) break;
    auto b0 = static_cast<uint8_t>(b[0]);
    auto b1 = static_cast<uint8_t>(b[1]);
    bool fin = b0 & 0x80;
    auto op = static_cast<Opcode>(b0 & 0x0f);
    bool masked = b1 & 0x80;
    uint64_t len = b1 & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (b.size() < 4) break;
      len = (static_cast<uint64_t>(static_cast<uint8_t>(b[2])) << 8) | static_cast<uint8_t>(b[3]);
      hdr = 4;
    } else if (len == 127) {
      if (b.size() < 10) break;
      len = 0;
      for (int i = 2; i < 10; ++i) len = (len << 8) | static_cast<uint8_t>(b[i]);
      hdr = 10;
      if (len >> 63) return base::Fail("websocket: 64-bit length with the top bit set",
                                       kCloseProtocolError);
    }
    if (b0 & 0x70) return base::Fail("websocket: reserved bits set", kCloseProtocolError);
    uint8_t raw_op = b0 & 0x0f;
    if ((raw_op > 0x2 && raw_op < 0x8) || raw_op > 0xA) {
      return base::Fail("websocket: unknown opcode " + std::to_string(raw_op),
                        kCloseProtocolError);
    }
    if (masked != (role_ == Role::kServer)) {
      return base::Fail(role_ == Role::kServer ? "websocket: client frame is not masked"
                                               : "websocket: server frame is masked",
                        kCloseProtocolError);
    }
    if (IsControl(op) && (!fin || len > 125)) {
      return base::Fail("websocket: fragmented or oversized control frame", kCloseProtocolError);
    }
    if (len > max_message_ || fragments_.size() + len > max_message_) {
      return base::Fail("websocket: message larger than " + std::to_string(max_message_) +
                            " bytes",
                        kCloseTooBig);
    }
    size_t need = hdr + (masked ? 4 : 0) + static_cast<size_t>(len);
    if (b.size() < need) break;
    std::string payload(b.substr(hdr + (masked ? 4 : 0), static_cast<size_t>(len)));
    if (masked) {
      const char* key = b.data() + hdr;
      for (size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>(payload[i] ^ key[i & 3]);
      }
    }
    pos_ += need;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    if (IsControl(op)) {
      if (op == Opcode::kClose && payload.size() == 1) {
        return base::Fail("websocket: close frame with a 1-byte payload", kCloseProtocolError);
      }
      return std::optional<Message>(Message{op, std::move(payload)});
    }
    if (op == Opcode::kContinuation) {
      if (!in_fragmented_) {
        return base::Fail("websocket: continuation frame without a message", kCloseProtocolError);
      }
      fragments_ += payload;
      if (!fin) continue;
      in_fragmented_ = false;
      return std::optional<Message>(Message{fragmented_op_, std::exchange(fragments_, {})});
    }
    if (in_fragmented_) {
      return base::Fail("websocket: new message inside a fragmented one", kCloseProtocolError);
    }
    if (fin) return std::optional<Message>(Message{op, std::move(payload)});
    in_fragmented_ = true;
    fragmented_op_ = op;
    fragments_ = std::move(payload);
  }
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return std::optional<Message>();
}

// ---- channels --------------------------------------------------------------------------------

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(data[k])); };
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (size_t rest = data.size() - i; rest > 0) {
    uint32_t v = u(i) << 16;
    if (rest == 2) v |= u(i + 1) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = text[i + j];
      uint32_t d;
      if (c == '=') {
        if (i + 4 != text.size() || j < 2) return std::nullopt;
        ++pad;
        d = 0;
      } else {
        if (pad) return std::nullopt;
        size_t k = kB64.find(c);
        if (k == std::string_view::npos) return std::nullopt;
        d = static_cast<uint32_t>(k);
      }
      v = (v << 6) | d;
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

Message EncodeChannelMessage(StreamProtocol p, uint8_t channel, std::string_view data) {
  Message m;
  if (IsBase64(p)) {
    m.opcode = Opcode::kText;
    m.payload = static_cast<char>('0' + channel) + Base64Encode(data);
  } else {
    m.opcode = Opcode::kBinary;
    m.payload.reserve(data.size() + 1);
    m.payload += static_cast<char>(channel);
    m.payload.append(data);
  }
  return m;
}

Message EncodeCloseSignal(uint8_t channel) {
  Message m;
  m.opcode = Opcode::kBinary;
  m.payload = {static_cast<char>(kCloseSignal), static_cast<char>(channel)};
  return m;
}

base::Result<ChannelMessage> DecodeChannelMessage(StreamProtocol p, std::string_view payload) {
  if (payload.empty()) return base::Fail("empty channel message", EINVAL);
  auto first = static_cast<uint8_t>(payload[0]);
  if (HasCloseSignal(p) && first == kCloseSignal) {
    if (payload.size() != 2) {
      return base::Fail("close signal must carry exactly one channel byte, got " +
                            std::to_string(payload.size() - 1),
                        EINVAL);
    }
    return ChannelMessage{kCloseSignal, std::string(payload.substr(1))};
  }
  if (IsBase64(p)) {
    if (first < '0' || first > '9') {
      return base::Fail("base64 channel message with channel character '" +
                            std::string(1, static_cast<char>(first)) + "'",
                        EINVAL);
    }
    auto data = Base64Decode(payload.substr(1));
    if (!data) return base::Fail("invalid base64 on channel " + std::to_string(first - '0'), EINVAL);
    return ChannelMessage{static_cast<uint8_t>(first - '0'), std::move(*data)};
  }
  return ChannelMessage{first, std::string(payload.substr(1))};
}

// ---- status ----------------------------------------------------------------------------------

std::string StatusSuccessJson() {
  ordered_json s;
  s["metadata"] = ordered_json::object();
  s["status"] = "Success";
  return s.dump();
}

std::string StatusExitCodeJson(int code) {
  ordered_json s;
  s["metadata"] = ordered_json::object();
  s["status"] = "Failure";
  s["message"] = "command terminated with non-zero exit code: exit status " + std::to_string(code);
  s["reason"] = "NonZeroExitCode";
  s["details"]["causes"] =
      ordered_json::array({{{"reason", "ExitCode"}, {"message", std::to_string(code)}}});
  return s.dump();
}

std::string StatusInternalErrorJson(std::string_view message) {
  ordered_json s;
  s["metadata"] = ordered_json::object();
  s["status"] = "Failure";
  s["message"] = "Internal error occurred: " + std::string(message);
  s["reason"] = "InternalError";
  s["details"]["causes"] = ordered_json::array({{{"message", std::string(message)}}});
  s["code"] = 500;
  return s.dump();
}

std::string FinalStatus(StreamProtocol p, const base::Result<int>& exit_code) {
  std::string json;
  std::string text;  // v1WriteStatusFunc: the Status message, on failure only
  if (!exit_code) {
    std::string msg = "error executing command in container: " + exit_code.error().message;
    json = StatusInternalErrorJson(msg);
    text = "Internal error occurred: " + msg;
  } else if (*exit_code != 0) {
    json = StatusExitCodeJson(*exit_code);
    text = "command terminated with non-zero exit code: exit status " +
           std::to_string(*exit_code);
  } else {
    json = StatusSuccessJson();
  }
  return SendsStatusJson(p) ? json : text;
}

base::Result<int> ExitCodeFromStatus(std::string_view text) {
  auto s = nlohmann::json::parse(text, nullptr, false);
  if (s.is_discarded() || !s.is_object()) {
    return base::Fail("error stream protocol error: " + std::string(text), EPROTO);
  }
  std::string status = s.value("status", "");
  if (status == "Success") return 0;
  if (status != "Failure") return base::Fail("error stream protocol error: unknown error", EPROTO);
  if (s.value("reason", "") == "NonZeroExitCode") {
    if (!s.contains("details") || !s["details"].is_object()) {
      return base::Fail("error stream protocol error: details must be set", EPROTO);
    }
    const auto& d = s["details"];
    if (d.contains("causes") && d["causes"].is_array()) {
      for (const auto& c : d["causes"]) {
        if (!c.is_object() || c.value("reason", "") != "ExitCode") continue;
        std::string m = c.value("message", "");
        char* end = nullptr;
        errno = 0;
        unsigned long v = m.empty() ? 256 : std::strtoul(m.c_str(), &end, 10);
        if (errno != 0 || (end && *end != '\0') || v > 255) {
          return base::Fail("error stream protocol error: invalid exit code value \"" + m + "\"",
                            EPROTO);
        }
        return static_cast<int>(v);
      }
    }
    return base::Fail("error stream protocol error: no ExitCode cause given", EPROTO);
  }
  return base::Fail(s.value("message", std::string("unknown error")), EIO);
}

// ---- request ---------------------------------------------------------------------------------

base::Result<ExecOptions> ParseExecOptions(
    const std::vector<std::pair<std::string, std::string>>& query) {
  ExecOptions o;
  auto first = [&](std::string_view key) -> std::string {
    for (const auto& [k, v] : query) {
      if (k == key) return v;
    }
    return "";
  };
  o.tty = first("tty") == "1";
  o.stdin = first("stdin") == "1";
  o.stdout = first("stdout") == "1";
  o.stderr = first("stderr") == "1";
  if (o.tty && o.stderr) o.stderr = false;  // as the kubelet: a TTY has no separate stderr
  for (const auto& [k, v] : query) {
    if (k == "command") o.command.push_back(v);
  }
  if (!o.stdin && !o.stdout && !o.stderr) {
    return base::Fail("you must specify at least 1 of stdin, stdout, stderr", EINVAL);
  }
  if (o.command.empty()) {
    return base::Fail("you must specify at least one command for the container", EINVAL);
  }
  return o;
}

std::vector<TerminalSize> TakeTerminalSizes(std::string* buf) {
  std::vector<TerminalSize> out;
  // TerminalSize has no nested objects: each one ends at the first '}' after its '{'.
  size_t end;
  while ((end = buf->find('}')) != std::string::npos) {
    std::string one = buf->substr(0, end + 1);
    buf->erase(0, end + 1);
    auto j = nlohmann::json::parse(one.substr(std::min(one.find('{'), one.size())), nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    auto dim = [&](const char* k) -> unsigned {
      auto it = j.find(k);
      if (it == j.end() || !it->is_number_unsigned()) return 0;
      return static_cast<unsigned>(std::min<uint64_t>(it->get<uint64_t>(), 65535));
    };
    TerminalSize t{dim("Width"), dim("Height")};
    if (t.width > 0 && t.height > 0) out.push_back(t);
  }
  if (buf->size() > 4096) buf->clear();  // not a terminal size
  return out;
}

}  // namespace agent::execproto
