#include "agent/spdy_protocol.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

namespace agent::spdy {
namespace {

// SPDY/3 section 2.6.10.1 (sha256 51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02).
constexpr char kDictionary[] =
    "\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00"
    "\x00\x06" "delete\x00\x00\x00\x05trace\x00\x00\x00\x06" "accept\x00\x00\x00\x0e" "accept-ch"
    "arset\x00\x00\x00\x0f" "accept-encoding\x00\x00\x00\x0f" "accept-language\x00\x00\x00\x0d" ""
    "accept-ranges\x00\x00\x00\x03" "age\x00\x00\x00\x05" "allow\x00\x00\x00\x0d" "authorization"
    "\x00\x00\x00\x0d" "cache-control\x00\x00\x00\x0a" "connection\x00\x00\x00\x0c" "content-bas"
    "e\x00\x00\x00\x10" "content-encoding\x00\x00\x00\x10" "content-language\x00\x00\x00\x0e" "c"
    "ontent-length\x00\x00\x00\x10" "content-location\x00\x00\x00\x0b" "content-md5\x00\x00\x00"
    "\x0d" "content-range\x00\x00\x00\x0c" "content-type\x00\x00\x00\x04" "date\x00\x00\x00\x04" ""
    "etag\x00\x00\x00\x06" "expect\x00\x00\x00\x07" "expires\x00\x00\x00\x04" "from\x00\x00\x00"
    "\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-ma"
    "tch\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified"
    "\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12p"
    "roxy-authenticate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07re"
    "ferer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07tra"
    "iler\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00"
    "\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate"
    "\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06" "200 OK"
    "\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public"
    "\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin10010120120220520"
    "6300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritat"
    "ive Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbid"
    "den404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb "
    "Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchu"
    "nked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/pla"
    "in,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,ut"
    "f-,*,enq=0.";
static_assert(sizeof(kDictionary) - 1 == 1423, "the SPDY/3 dictionary has 1423 bytes");

constexpr uint16_t kVersion = 3;

void Put32(std::string& s, uint32_t v) {
  s += static_cast<char>(v >> 24);
  s += static_cast<char>((v >> 16) & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
  s += static_cast<char>(v & 0xff);
}

uint32_t Get32(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

std::string ControlHeader(uint16_t type, uint8_t flags, size_t length) {
  std::string h;
  h += static_cast<char>(0x80 | (kVersion >> 8));
  h += static_cast<char>(kVersion & 0xff);
  h += static_cast<char>(type >> 8);
  h += static_cast<char>(type & 0xff);
  h += static_cast<char>(flags);
  h += static_cast<char>((length >> 16) & 0xff);
  h += static_cast<char>((length >> 8) & 0xff);
  h += static_cast<char>(length & 0xff);
  return h;
}

std::string SerializeHeaders(const Headers& headers) {
  std::string out;
  Put32(out, static_cast<uint32_t>(headers.size()));
  for (const auto& [k, v] : headers) {
    Put32(out, static_cast<uint32_t>(k.size()));
    out += k;
    Put32(out, static_cast<uint32_t>(v.size()));
    out += v;
  }
  return out;
}

base::Result<Headers> ParseHeaders(std::string_view b) {
  auto bad = [] { return base::Fail("spdy: malformed header block", EPROTO); };
  if (b.size() < 4) return bad();
  uint32_t n = Get32(b, 0);
  size_t at = 4;
  Headers h;
  for (uint32_t i = 0; i < n; ++i) {
    std::string kv[2];
    for (auto& part : kv) {
      if (b.size() - at < 4) return bad();
      uint32_t len = Get32(b, at);
      at += 4;
      if (b.size() - at < len) return bad();
      part.assign(b.substr(at, len));
      at += len;
    }
    h.emplace_back(std::move(kv[0]), std::move(kv[1]));
  }
  if (at != b.size()) return bad();
  return h;
}

}  // namespace

std::string_view Dictionary() { return std::string_view(kDictionary, sizeof(kDictionary) - 1); }

std::string HeaderValue(const Headers& h, std::string_view name) {
  for (const auto& [k, v] : h) {
    if (k == name) return v;
  }
  return "";
}

struct HeaderCodec::Impl {
  z_stream def{};
  z_stream inf{};
  bool def_ready = false;
  bool inf_ready = false;
  ~Impl() {
    if (def_ready) deflateEnd(&def);
    if (inf_ready) inflateEnd(&inf);
  }
};

HeaderCodec::HeaderCodec() : impl_(std::make_unique<Impl>()) {}
HeaderCodec::~HeaderCodec() = default;

base::Result<std::string> HeaderCodec::Compress(const Headers& headers) {
  z_stream& z = impl_->def;
  if (!impl_->def_ready) {
    if (deflateInit(&z, Z_DEFAULT_COMPRESSION) != Z_OK) {
      return base::Fail("spdy: deflateInit failed", ENOMEM);
    }
    impl_->def_ready = true;
    if (deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(kDictionary),
                             sizeof(kDictionary) - 1) != Z_OK) {
      return base::Fail("spdy: deflateSetDictionary failed", EINVAL);
    }
  }
  std::string in = SerializeHeaders(headers);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  char buf[4096];
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int r = deflate(&z, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR) return base::Fail("spdy: deflate failed", EIO);
    out.append(buf, sizeof buf - z.avail_out);
  } while (z.avail_out == 0 || z.avail_in > 0);
  return out;
}

base::Result<Headers> HeaderCodec::Decompress(std::string_view block) {
  z_stream& z = impl_->inf;
  if (!impl_->inf_ready) {
    if (inflateInit(&z) != Z_OK) return base::Fail("spdy: inflateInit failed", ENOMEM);
    impl_->inf_ready = true;
  }
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(block.data()));
  z.avail_in = static_cast<uInt>(block.size());
  char buf[4096];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int r = inflate(&z, Z_SYNC_FLUSH);
    if (r == Z_NEED_DICT) {
      if (inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(kDictionary),
                               sizeof(kDictionary) - 1) != Z_OK) {
        return base::Fail("spdy: header block uses an unknown dictionary", EPROTO);
      }
      continue;
    }
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
      return base::Fail(std::string("spdy: header block does not inflate: ") +
                            (z.msg ? z.msg : "zlib error"),
                        EPROTO);
    }
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > (16u << 20)) return base::Fail("spdy: header block too large", EPROTO);
    if (z.avail_in == 0 && z.avail_out != 0) break;
    if (r == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  return ParseHeaders(out);
}

base::Result<std::optional<Frame>> FrameParser::Next() {
  std::string_view b(buf_);
  b.remove_prefix(pos_);
  if (b.size() < 8) return std::optional<Frame>();
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  size_t length = (static_cast<size_t>(u8(5)) << 16) | (static_cast<size_t>(u8(6)) << 8) | u8(7);
  if (length > max_frame_) {
    return base::Fail("spdy: frame of " + std::to_string(length) + " bytes is too large", EPROTO);
  }
  if (b.size() < 8 + length) return std::optional<Frame>();
  Frame f;
  f.flags = u8(4);
  const uint8_t h0 = u8(0), h1 = u8(1), h2 = u8(2), h3 = u8(3);
  const uint32_t first_word = Get32(b, 0);
  std::string payload(b.substr(8, length));
  pos_ += 8 + length;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 65536 && pos_ > buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  if (!(h0 & 0x80)) {
    f.control = false;
    f.stream_id = first_word & 0x7fffffff;
    f.data = std::move(payload);
    return std::optional<Frame>(std::move(f));
  }
  f.control = true;
  uint16_t version = static_cast<uint16_t>(((h0 & 0x7f) << 8) | h1);
  f.type = static_cast<uint16_t>((h2 << 8) | h3);
  if (version != kVersion) {
    return base::Fail("spdy: unsupported version " + std::to_string(version), EPROTO);
  }
  auto need = [&](size_t n) -> base::Result<> {
    if (payload.size() < n) {
      return base::Fail("spdy: control frame " + std::to_string(f.type) + " too short", EPROTO);
    }
    return {};
  };
  switch (f.type) {
    case kSynStream: {
      CUBELET_TRY(need(10));
      f.stream_id = Get32(payload, 0) & 0x7fffffff;
      f.associated_id = Get32(payload, 4) & 0x7fffffff;
      auto h = inflate_.Decompress(std::string_view(payload).substr(10));
      if (!h) return tl::unexpected(h.error());
      f.headers = std::move(*h);
      break;
    }
    case kSynReply:
    case kHeaders: {
      CUBELET_TRY(need(4));
      f.stream_id = Get32(payload, 0) & 0x7fffffff;
      auto h = inflate_.Decompress(std::string_view(payload).substr(4));
      if (!h) return tl::unexpected(h.error());
      f.headers = std::move(*h);
      break;
    }
    case kRstStream:
    case kWindowUpdate:
      CUBELET_TRY(need(8));
      f.stream_id = Get32(payload, 0) & 0x7fffffff;
      f.value = Get32(payload, 4) & (f.type == kWindowUpdate ? 0x7fffffff : 0xffffffff);
      break;
    case kPing:
      CUBELET_TRY(need(4));
      f.value = Get32(payload, 0);
      break;
    case kGoAway:
      CUBELET_TRY(need(4));
      f.last_good_stream_id = Get32(payload, 0) & 0x7fffffff;
      if (payload.size() >= 8) f.value = Get32(payload, 4);
      break;
    default:
      break;  // SETTINGS and unknown control frames: nothing to keep (flow control unused)
  }
  return std::optional<Frame>(std::move(f));
}

base::Result<std::string> EncodeSynStream(HeaderCodec& codec, uint32_t stream_id,
                                          const Headers& headers, bool fin) {
  auto block = codec.Compress(headers);
  if (!block) return tl::unexpected(block.error());
  std::string f = ControlHeader(kSynStream, fin ? kFlagFin : 0, 10 + block->size());
  Put32(f, stream_id & 0x7fffffff);
  Put32(f, 0);
  f += '\0';  // priority 0
  f += '\0';  // slot
  f += *block;
  return f;
}

base::Result<std::string> EncodeSynReply(HeaderCodec& codec, uint32_t stream_id,
                                         const Headers& headers, bool fin) {
  auto block = codec.Compress(headers);
  if (!block) return tl::unexpected(block.error());
  std::string f = ControlHeader(kSynReply, fin ? kFlagFin : 0, 4 + block->size());
  Put32(f, stream_id & 0x7fffffff);
  f += *block;
  return f;
}

std::string EncodeData(uint32_t stream_id, std::string_view data, bool fin) {
  std::string f;
  f.reserve(8 + data.size());
  Put32(f, stream_id & 0x7fffffff);
  f += static_cast<char>(fin ? kFlagFin : 0);
  size_t n = data.size();
  f += static_cast<char>((n >> 16) & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  f += static_cast<char>(n & 0xff);
  f.append(data);
  return f;
}

std::string EncodeRstStream(uint32_t stream_id, uint32_t status) {
  std::string f = ControlHeader(kRstStream, 0, 8);
  Put32(f, stream_id & 0x7fffffff);
  Put32(f, status);
  return f;
}

std::string EncodePing(uint32_t id) {
  std::string f = ControlHeader(kPing, 0, 4);
  Put32(f, id);
  return f;
}

std::string EncodeGoAway(uint32_t last_good_stream_id, uint32_t status) {
  std::string f = ControlHeader(kGoAway, 0, 8);
  Put32(f, last_good_stream_id & 0x7fffffff);
  Put32(f, status);
  return f;
}

}  // namespace agent::spdy
