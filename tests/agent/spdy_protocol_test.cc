// SPDY/3.1 framing and header compression: header blocks made by another zlib user (Python's
// zlib with the SPDY/3 dictionary, as Go's compress/zlib does for spdystream) decode in order
// through one shared context; our blocks carry the dictionary id Go's reader checks; frames
// round-trip byte-exactly in the layout of the spec.
#include "agent/spdy_protocol.h"

#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <string>

namespace spdy = agent::spdy;

namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    snprintf(b, sizeof b, "%02x", d[i]);
    hex += b;
  }
  return hex;
}

// Two header blocks of one zlib stream (python3: zlib.compressobj(zdict=SPDY dictionary),
// Z_SYNC_FLUSH after each): {streamtype: error}, then {streamtype: stdin, x-multi: "a\0b"}.
const std::string kBlock1(
    "\x78\xf9\xe3\xc6\xa7\xc2\x02\xa6\x23\x46\x70\x3a\x2b\x29\x4a\x4d\xcc\x85\x16\x25\xac\xa9\xa0"
    "\x80\x06\x00\x00\x00\xff\xff",
    30);
const std::string kBlock2(
    "\x02\x65\x1c\x4c\xa9\xe2\x12\x60\x76\x01\xa5\xe0\x0a\xdd\xdc\xd2\x9c\x92\x4c\x70\x39\xca\x90"
    "\x04\x00\x00\x00\xff\xff",
    29);

std::string SynStreamWith(uint32_t id, const std::string& block) {
  size_t len = 10 + block.size();
  std::string f = Bytes({0x80, 0x03, 0x00, 0x01, 0x00, 0, 0, static_cast<int>(len)});
  f += Bytes({0, 0, 0, static_cast<int>(id), 0, 0, 0, 0, 0, 0});
  return f + block;
}

}  // namespace

TEST_CASE("spdy: the SPDY/3 dictionary is the spec's") {
  CHECK(spdy::Dictionary().size() == 1423);
  CHECK(Sha256Hex(spdy::Dictionary()) ==
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02");
}

TEST_CASE("spdy: SYN_STREAMs from another zlib implementation decode in order") {
  spdy::FrameParser p;
  std::string wire = SynStreamWith(1, kBlock1) + SynStreamWith(3, kBlock2);
  for (size_t i = 0; i < wire.size(); i += 7) {  // in odd pieces
    p.Feed(std::string_view(wire).substr(i, 7));
  }
  auto f1 = p.Next();
  REQUIRE(f1);
  REQUIRE(*f1);
  CHECK((*f1)->control);
  CHECK((*f1)->type == spdy::kSynStream);
  CHECK((*f1)->stream_id == 1);
  CHECK(spdy::HeaderValue((*f1)->headers, "streamtype") == "error");
  auto f2 = p.Next();
  REQUIRE(f2);
  REQUIRE(*f2);
  CHECK((*f2)->stream_id == 3);
  CHECK(spdy::HeaderValue((*f2)->headers, "streamtype") == "stdin");
  CHECK(spdy::HeaderValue((*f2)->headers, "x-multi") == std::string("a\0b", 3));
  auto none = p.Next();
  REQUIRE(none);
  CHECK_FALSE(*none);
}

TEST_CASE("spdy: our header blocks name the dictionary and round-trip through one context") {
  spdy::HeaderCodec out;
  auto reply = spdy::EncodeSynReply(out, 5, {}, false);
  REQUIRE(reply);
  // Control bit + version 3, type 2, no flags, then the stream id and the zlib stream: CMF 0x78
  // and FLG with FDICT, followed by the dictionary's Adler-32 (what Go's zlib reader checks).
  CHECK(reply->substr(0, 5) == Bytes({0x80, 0x03, 0x00, 0x02, 0x00}));
  CHECK(reply->substr(8, 4) == Bytes({0, 0, 0, 5}));
  CHECK(static_cast<uint8_t>((*reply)[12]) == 0x78);
  CHECK((static_cast<uint8_t>((*reply)[13]) & 0x20) != 0);
  CHECK(reply->substr(14, 4) == Bytes({0xe3, 0xc6, 0xa7, 0xc2}));
  auto syn = spdy::EncodeSynStream(out, 7, {{"streamtype", "stdout"}, {"port", "80"}}, true);
  REQUIRE(syn);
  spdy::FrameParser in;
  in.Feed(*reply + *syn + spdy::EncodeData(7, "hello", true) + spdy::EncodePing(9) +
          spdy::EncodeRstStream(7, spdy::kRstCancel) + spdy::EncodeGoAway(7, 0));
  auto next = [&] {
    auto f = in.Next();
    REQUIRE(f);
    REQUIRE(*f);
    return **f;
  };
  auto r = next();
  CHECK(r.type == spdy::kSynReply);
  CHECK(r.stream_id == 5);
  CHECK(r.headers.empty());
  auto s = next();
  CHECK(s.type == spdy::kSynStream);
  CHECK(s.stream_id == 7);
  CHECK(s.flags == spdy::kFlagFin);
  CHECK(s.headers == spdy::Headers{{"streamtype", "stdout"}, {"port", "80"}});
  auto d = next();
  CHECK_FALSE(d.control);
  CHECK(d.stream_id == 7);
  CHECK(d.flags == spdy::kFlagFin);
  CHECK(d.data == "hello");
  auto ping = next();
  CHECK(ping.type == spdy::kPing);
  CHECK(ping.value == 9);
  auto rst = next();
  CHECK(rst.type == spdy::kRstStream);
  CHECK(rst.value == spdy::kRstCancel);
  auto ga = next();
  CHECK(ga.type == spdy::kGoAway);
  CHECK(ga.last_good_stream_id == 7);
}

TEST_CASE("spdy: frame layouts and errors") {
  CHECK(spdy::EncodeData(3, "ab", false) == Bytes({0, 0, 0, 3, 0, 0, 0, 2, 'a', 'b'}));
  CHECK(spdy::EncodeData(0x7fffffff, "", true) ==
        Bytes({0x7f, 0xff, 0xff, 0xff, 0x01, 0, 0, 0}));
  CHECK(spdy::EncodeGoAway(1, 0) ==
        Bytes({0x80, 0x03, 0x00, 0x07, 0x00, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0}));
  CHECK(spdy::EncodePing(2) == Bytes({0x80, 0x03, 0x00, 0x06, 0x00, 0, 0, 4, 0, 0, 0, 2}));

  spdy::FrameParser v2;
  v2.Feed(Bytes({0x80, 0x02, 0x00, 0x06, 0x00, 0, 0, 4, 0, 0, 0, 1}));
  CHECK_FALSE(v2.Next());  // SPDY/2 is refused

  spdy::FrameParser big(100);
  big.Feed(Bytes({0, 0, 0, 1, 0, 0, 0x10, 0}));
  CHECK_FALSE(big.Next());

  spdy::FrameParser garbage;
  garbage.Feed(SynStreamWith(1, "not zlib at all"));
  CHECK_FALSE(garbage.Next());

  spdy::FrameParser partial;  // half a frame: wait for more
  partial.Feed(spdy::EncodeData(1, "abcdef", false).substr(0, 10));
  auto n = partial.Next();
  REQUIRE(n);
  CHECK_FALSE(*n);

  spdy::FrameParser settings;  // unknown/ignored control frames pass through
  settings.Feed(Bytes({0x80, 0x03, 0x00, 0x04, 0x00, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 1, 0}));
  auto st = settings.Next();
  REQUIRE(st);
  REQUIRE(*st);
  CHECK((*st)->type == spdy::kSettings);
}
