#pragma once
// SPDY/3.1 framing as the Kubernetes streaming protocols use it (moby/spdystream, the client of
// kubectl's SPDY fallback and of a real kube-apiserver's WebSocket->SPDY stream translator):
// control frames SYN_STREAM / SYN_REPLY / RST_STREAM / SETTINGS / PING / GOAWAY / HEADERS /
// WINDOW_UPDATE and DATA frames, with name/value header blocks compressed by one zlib stream per
// direction over the SPDY/3 dictionary. No I/O; zlib stays in the .cc.
// Spec: https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace agent::spdy {

enum FrameType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

constexpr uint8_t kFlagFin = 0x01;
// RST_STREAM status codes used here.
constexpr uint32_t kRstProtocolError = 1;
constexpr uint32_t kRstRefusedStream = 3;
constexpr uint32_t kRstCancel = 5;

// Header names are lower case on the wire; repeated values are joined by NUL.
using Headers = std::vector<std::pair<std::string, std::string>>;

// The value of header `name` ("" if absent).
std::string HeaderValue(const Headers& h, std::string_view name);

struct Frame {
  bool control = false;
  uint16_t type = 0;       // control frames
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // data, SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE
  uint32_t associated_id = 0;  // SYN_STREAM
  uint32_t value = 0;  // RST_STREAM/GOAWAY status, PING id, WINDOW_UPDATE delta
  uint32_t last_good_stream_id = 0;  // GOAWAY
  Headers headers;     // SYN_STREAM, SYN_REPLY, HEADERS
  std::string data;    // DATA
};

// One direction's header compression context (zlib with the SPDY/3 dictionary, a sync flush
// after each block), or decompression context.
class HeaderCodec {
 public:
  HeaderCodec();
  ~HeaderCodec();
  HeaderCodec(const HeaderCodec&) = delete;
  HeaderCodec& operator=(const HeaderCodec&) = delete;

  base::Result<std::string> Compress(const Headers& headers);
  base::Result<Headers> Decompress(std::string_view block);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Incremental parser of the peer's frames (header blocks are decompressed in order, as the
// shared zlib context demands).
class FrameParser {
 public:
  explicit FrameParser(size_t max_frame = 16 << 20) : max_frame_(max_frame) {}
  void Feed(std::string_view data) { buf_.append(data); }
  base::Result<std::optional<Frame>> Next();

 private:
  size_t max_frame_;
  std::string buf_;
  size_t pos_ = 0;
  HeaderCodec inflate_;
};

// Writers. `codec` is this side's compression context (for frames with header blocks).
base::Result<std::string> EncodeSynStream(HeaderCodec& codec, uint32_t stream_id,
                                          const Headers& headers, bool fin);
base::Result<std::string> EncodeSynReply(HeaderCodec& codec, uint32_t stream_id,
                                         const Headers& headers, bool fin);
std::string EncodeData(uint32_t stream_id, std::string_view data, bool fin);
std::string EncodeRstStream(uint32_t stream_id, uint32_t status);
std::string EncodePing(uint32_t id);
std::string EncodeGoAway(uint32_t last_good_stream_id, uint32_t status);

// The SPDY/3 zlib dictionary (1423 bytes).
std::string_view Dictionary();

}  // namespace agent::spdy
