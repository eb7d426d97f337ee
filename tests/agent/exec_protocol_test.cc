// The exec wire protocol without I/O: RFC 6455 framing (with the RFC's own examples), the
// channel.k8s.io encodings, subprotocol negotiation, and the Status <-> exit code mapping.
#include "agent/exec_protocol.h"

#include <catch2/catch.hpp>
#include <string>

namespace ep = agent::execproto;

namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

// All complete messages in `wire` (fed in pieces of `step` bytes).
std::vector<ep::Message> ParseAll(ep::FrameParser& p, const std::string& wire, size_t step) {
  std::vector<ep::Message> out;
  for (size_t i = 0; i < wire.size(); i += step) {
    p.Feed(std::string_view(wire).substr(i, step));
    for (;;) {
      auto m = p.Next();
      REQUIRE(m);
      if (!*m) break;
      out.push_back(**m);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("websocket: Sec-WebSocket-Accept (RFC 6455 1.3 example)") {
  CHECK(ep::WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("websocket: RFC 6455 5.7 examples parse") {
  SECTION("a single-frame unmasked text message (client side)") {
    ep::FrameParser p(ep::FrameParser::Role::kClient);
    auto msgs = ParseAll(p, Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), 1);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].opcode == ep::Opcode::kText);
    CHECK(msgs[0].payload == "Hello");
  }
  SECTION("a single-frame masked text message (server side)") {
    ep::FrameParser p(ep::FrameParser::Role::kServer);
    auto msgs = ParseAll(
        p, Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}), 3);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].payload == "Hello");
  }
  SECTION("a fragmented unmasked text message, with a ping in between") {
    ep::FrameParser p(ep::FrameParser::Role::kClient);
    std::string wire = Bytes({0x01, 0x03, 0x48, 0x65, 0x6c}) +
                       Bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}) +
                       Bytes({0x80, 0x02, 0x6c, 0x6f});
    auto msgs = ParseAll(p, wire, wire.size());
    REQUIRE(msgs.size() == 2);
    CHECK(msgs[0].opcode == ep::Opcode::kPing);  // control frames come through at once
    CHECK(msgs[0].payload == "Hello");
    CHECK(msgs[1].opcode == ep::Opcode::kText);
    CHECK(msgs[1].payload == "Hello");
  }
  SECTION("256 bytes and 64 KiB binary messages use the 16- and 64-bit lengths") {
    std::string a(256, 'a'), b(65536, 'b');
    std::string fa = ep::EncodeFrame(ep::Opcode::kBinary, a, false);
    std::string fb = ep::EncodeFrame(ep::Opcode::kBinary, b, false);
    CHECK(fa.substr(0, 4) == Bytes({0x82, 0x7E, 0x01, 0x00}));
    CHECK(fb.substr(0, 10) == Bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
    ep::FrameParser p(ep::FrameParser::Role::kClient);
    auto msgs = ParseAll(p, fa + fb, 1000);
    REQUIRE(msgs.size() == 2);
    CHECK(msgs[0].payload == a);
    CHECK(msgs[1].payload == b);
  }
}

TEST_CASE("websocket: encode/parse round trip at the length boundaries") {
  for (size_t n : {0, 1, 125, 126, 127, 65535, 65536, 200000}) {
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 7 + 3);
    for (bool mask : {false, true}) {
      ep::FrameParser p(mask ? ep::FrameParser::Role::kServer : ep::FrameParser::Role::kClient);
      std::string wire = ep::EncodeFrame(ep::Opcode::kBinary, payload, mask);
      auto msgs = ParseAll(p, wire, 4096);
      INFO("n=" << n << " mask=" << mask);
      REQUIRE(msgs.size() == 1);
      CHECK(msgs[0].opcode == ep::Opcode::kBinary);
      CHECK(msgs[0].payload == payload);
      CHECK(p.buffered() == 0);
      if (mask && n > 0) CHECK(wire.find(payload) == std::string::npos);  // really masked
    }
  }
  ep::FrameParser p(ep::FrameParser::Role::kClient);
  auto msgs = ParseAll(p, ep::EncodeClose(1000, "bye", false), 1);
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].opcode == ep::Opcode::kClose);
  CHECK(msgs[0].payload == Bytes({0x03, 0xE8}) + "bye");
}

TEST_CASE("websocket: protocol violations carry the close code") {
  auto error_of = [](ep::FrameParser::Role role, const std::string& wire) {
    ep::FrameParser p(role, 1000);
    p.Feed(wire);
    auto m = p.Next();
    REQUIRE_FALSE(m);
    return m.error().code;
  };
  using R = ep::FrameParser::Role;
  // A client's frame must be masked, a server's must not.
  CHECK(error_of(R::kServer, ep::EncodeFrame(ep::Opcode::kBinary, "x", false)) == 1002);
  CHECK(error_of(R::kClient, ep::EncodeFrame(ep::Opcode::kBinary, "x", true)) == 1002);
  CHECK(error_of(R::kClient, Bytes({0xC2, 0x00})) == 1002);        // RSV1 without an extension
  CHECK(error_of(R::kClient, Bytes({0x83, 0x00})) == 1002);        // reserved opcode 3
  CHECK(error_of(R::kClient, Bytes({0x09, 0x00})) == 1002);        // fragmented ping
  CHECK(error_of(R::kClient, Bytes({0x80, 0x01, 0x61})) == 1002);  // continuation out of the blue
  CHECK(error_of(R::kClient, Bytes({0x02, 0x01, 0x61, 0x82, 0x00})) == 1002);  // nested message
  CHECK(error_of(R::kClient, Bytes({0x88, 0x01, 0x03})) == 1002);  // 1-byte close payload
  CHECK(error_of(R::kClient, ep::EncodeFrame(ep::Opcode::kBinary, std::string(1001, 'x'), false)) ==
        1009);
  // Too big is noticed from the header, before the payload arrives.
  CHECK(error_of(R::kClient, Bytes({0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0})) == 1009);
}

TEST_CASE("channel.k8s.io: subprotocol negotiation follows the client's order") {
  auto pick = [](std::vector<std::string> offered) {
    auto n = ep::NegotiateSubprotocol(offered);
    return n ? n->name : std::string("<none>");
  };
  CHECK(pick({"v5.channel.k8s.io"}) == "v5.channel.k8s.io");
  CHECK(pick({"v4.channel.k8s.io, v5.channel.k8s.io"}) == "v4.channel.k8s.io");
  CHECK(pick({"SPDY/3.1", "v4.base64.channel.k8s.io"}) == "v4.base64.channel.k8s.io");
  CHECK(pick({"base64.channel.k8s.io"}) == "base64.channel.k8s.io");
  CHECK(pick({"v6.channel.k8s.io", "chat"}) == "<none>");
  CHECK(pick({}) == "");  // no header: the unnamed binary protocol
  auto v5 = ep::NegotiateSubprotocol({"v5.channel.k8s.io"});
  REQUIRE(v5);
  CHECK(ep::HasCloseSignal(v5->protocol));
  CHECK(ep::SendsStatusJson(v5->protocol));
  CHECK_FALSE(ep::HasCloseSignal(ep::StreamProtocol::kV4Channel));
  CHECK_FALSE(ep::SendsStatusJson(ep::StreamProtocol::kChannel));
}

TEST_CASE("channel.k8s.io: message encodings (wsstream/conn.go examples)") {
  SECTION("binary: the channel byte, then the data") {
    auto m = ep::EncodeChannelMessage(ep::StreamProtocol::kV5Channel, ep::kStdout, "\n");
    CHECK(m.opcode == ep::Opcode::kBinary);
    CHECK(m.payload == Bytes({1, 10}));
    auto d = ep::DecodeChannelMessage(ep::StreamProtocol::kV5Channel, Bytes({0, 'f', 'o', 'o'}));
    REQUIRE(d);
    CHECK(d->channel == ep::kStdin);
    CHECK(d->data == "foo");
  }
  SECTION("base64: '0'+channel, then base64 in text frames") {
    auto m = ep::EncodeChannelMessage(ep::StreamProtocol::kV4Base64Channel, ep::kStdout, "\n");
    CHECK(m.opcode == ep::Opcode::kText);
    CHECK(m.payload == "1Cg==");
    auto d = ep::DecodeChannelMessage(ep::StreamProtocol::kBase64Channel, "0Zm9vCg==");
    REQUIRE(d);
    CHECK(d->channel == 0);
    CHECK(d->data == "foo\n");
    CHECK_FALSE(ep::DecodeChannelMessage(ep::StreamProtocol::kBase64Channel, "0Zm9v!g=="));
    CHECK_FALSE(ep::DecodeChannelMessage(ep::StreamProtocol::kBase64Channel, "xZm9v"));
  }
  SECTION("v5 close signal [255, channel]; only v5 knows it") {
    auto m = ep::EncodeCloseSignal(ep::kStdin);
    CHECK(m.payload == Bytes({255, 0}));
    auto d = ep::DecodeChannelMessage(ep::StreamProtocol::kV5Channel, m.payload);
    REQUIRE(d);
    CHECK(d->channel == ep::kCloseSignal);
    CHECK(d->data == Bytes({0}));
    CHECK_FALSE(ep::DecodeChannelMessage(ep::StreamProtocol::kV5Channel, Bytes({255, 0, 1})));
    auto v4 = ep::DecodeChannelMessage(ep::StreamProtocol::kV4Channel, m.payload);
    REQUIRE(v4);
    CHECK(v4->channel == 255);  // v4 servers treat it as data for an unknown channel
  }
  SECTION("base64 round trip of every length mod 3 and all byte values") {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (size_t n : {0, 1, 2, 3, 4, 5, 256}) {
      std::string s = all.substr(0, n);
      auto back = ep::Base64Decode(ep::Base64Encode(s));
      REQUIRE(back);
      CHECK(*back == s);
    }
    CHECK(ep::Base64Encode("foo\n") == "Zm9vCg==");
    CHECK_FALSE(ep::Base64Decode("Zm9"));
    CHECK_FALSE(ep::Base64Decode("Zm=v"));
  }
}

TEST_CASE("exec status: Status JSON as the kubelet writes it, exit code as kubectl reads it") {
  CHECK(ep::StatusSuccessJson() == R"({"metadata":{},"status":"Success"})");
  CHECK(ep::StatusExitCodeJson(3) ==
        R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit )"
        R"(code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":)"
        R"("ExitCode","message":"3"}]}})");
  CHECK(ep::StatusInternalErrorJson("boom") ==
        R"({"metadata":{},"status":"Failure","message":"Internal error occurred: boom",)"
        R"("reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500})");

  for (int code : {0, 1, 3, 126, 127, 137, 255}) {
    auto back = ep::ExitCodeFromStatus(ep::FinalStatus(ep::StreamProtocol::kV5Channel, code));
    REQUIRE(back);
    CHECK(*back == code);
  }
  // kubectl's decoder (errorDecoderV4) rules.
  auto err = [](const std::string& json) {
    auto r = ep::ExitCodeFromStatus(json);
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(err(R"({"status":"Failure","reason":"NonZeroExitCode"})") ==
        "error stream protocol error: details must be set");
  CHECK(err(R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[]}})") ==
        "error stream protocol error: no ExitCode cause given");
  CHECK(err(R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":)"
            R"([{"reason":"ExitCode","message":"256"}]}})") ==
        "error stream protocol error: invalid exit code value \"256\"");
  CHECK(err(ep::StatusInternalErrorJson("error executing command in container: nope")) ==
        "Internal error occurred: error executing command in container: nope");
  CHECK(err(R"({"status":"Weird"})") == "error stream protocol error: unknown error");

  SECTION("a command that could not start is an InternalError") {
    base::Result<int> failed = base::Fail("exec: \"nope\": executable file not found in $PATH");
    std::string s = ep::FinalStatus(ep::StreamProtocol::kV4Channel, failed);
    CHECK(s.find(R"("reason":"InternalError")") != std::string::npos);
    CHECK(err(s) ==
          "Internal error occurred: error executing command in container: exec: \"nope\": "
          "executable file not found in $PATH");
  }
  SECTION("pre-v4 protocols: nothing on success, the message text on failure") {
    CHECK(ep::FinalStatus(ep::StreamProtocol::kChannel, 0).empty());
    CHECK(ep::FinalStatus(ep::StreamProtocol::kBase64Channel, 2) ==
          "command terminated with non-zero exit code: exit status 2");
  }
}

TEST_CASE("exec options: the kubelet's query rules") {
  using Q = std::vector<std::pair<std::string, std::string>>;
  auto o = ep::ParseExecOptions(Q{{"command", "sh"}, {"command", "-c"}, {"command", "echo a b"},
                                  {"stdin", "1"}, {"stdout", "1"}, {"stderr", "1"}});
  REQUIRE(o);
  CHECK(o->command == std::vector<std::string>{"sh", "-c", "echo a b"});
  CHECK(o->stdin);
  CHECK(o->stdout);
  CHECK(o->stderr);
  CHECK_FALSE(o->tty);
  auto tty = ep::ParseExecOptions(Q{{"command", "sh"}, {"stdout", "1"}, {"stderr", "1"},
                                    {"tty", "1"}});
  REQUIRE(tty);
  CHECK(tty->tty);
  CHECK_FALSE(tty->stderr);  // a TTY has no separate stderr
  auto none = ep::ParseExecOptions(Q{{"command", "sh"}, {"stdout", "true"}});  // only "1" counts
  REQUIRE_FALSE(none);
  CHECK(none.error().message == "you must specify at least 1 of stdin, stdout, stderr");
  auto nocmd = ep::ParseExecOptions(Q{{"stdout", "1"}});
  REQUIRE_FALSE(nocmd);
  CHECK(nocmd.error().message == "you must specify at least one command for the container");
}

TEST_CASE("terminal sizes: JSON objects one after another, split anywhere") {
  std::string buf = "{\"Width\":80,\"Height\":24}\n{\"Width\":200,";
  auto a = ep::TakeTerminalSizes(&buf);
  REQUIRE(a.size() == 1);
  CHECK(a[0].width == 80);
  CHECK(a[0].height == 24);
  CHECK(buf == "\n{\"Width\":200,");  // the partial object waits for its end
  buf += "\"Height\":60}";
  auto b = ep::TakeTerminalSizes(&buf);
  REQUIRE(b.size() == 1);
  CHECK(b[0].width == 200);
  CHECK(b[0].height == 60);
  CHECK(buf.empty());
  // Malformed, zero and negative sizes are dropped; the next good one still counts.
  buf = "{\"Width\":-1,\"Height\":5}{oops}{\"Width\":0,\"Height\":5}{\"Height\":7,\"Width\":9}";
  auto c = ep::TakeTerminalSizes(&buf);
  REQUIRE(c.size() == 1);
  CHECK(c[0].width == 9);
  CHECK(c[0].height == 7);
  // Garbage without an end does not grow without bound.
  buf = std::string(5000, 'x');
  CHECK(ep::TakeTerminalSizes(&buf).empty());
  CHECK(buf.empty());
}
