#include "runtime/tar_reader.h"

#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace runtime {

struct TarReader::Impl {
  int fd;
  EVP_MD_CTX* md = nullptr;
  EVP_MD_CTX* out_md = nullptr;  // over the uncompressed stream
  bool detected = false;
  bool gzip = false;
  bool eof_raw = false;
  bool eof_out = false;
  z_stream zs{};
  std::vector<unsigned char> in = std::vector<unsigned char>(64 * 1024);
  size_t in_len = 0;  // pending bytes in `in` (uncompressed mode: not yet consumed)
  size_t in_off = 0;
  uint64_t remaining = 0;  // of the current entry
  uint64_t padding = 0;

  explicit Impl(int f) : fd(f) {
    md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
    out_md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(out_md, EVP_sha256(), nullptr);
  }
  ~Impl() {
    if (gzip) inflateEnd(&zs);
    EVP_MD_CTX_free(md);
    EVP_MD_CTX_free(out_md);
  }

  Result<size_t> RawRead() {
    if (eof_raw) return 0;
    ssize_t n;
    do {
      n = ::read(fd, in.data(), in.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) return base::Errno("read layer");
    if (n == 0) eof_raw = true;
    EVP_DigestUpdate(md, in.data(), static_cast<size_t>(n));
    in_len = static_cast<size_t>(n);
    in_off = 0;
    return in_len;
  }

  Result<> Detect() {
    detected = true;
    auto r = RawRead();
    if (!r) return tl::unexpected(r.error());
    if (in_len >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
      gzip = true;
      if (inflateInit2(&zs, 15 + 32) != Z_OK) return base::Fail("inflateInit failed");
      zs.next_in = in.data();
      zs.avail_in = static_cast<uInt>(in_len);
    }
    return {};
  }

  // Decompressed bytes; 0 at end of stream.
  Result<size_t> ReadOut(char* buf, size_t n) {
    auto r = ReadOutRaw(buf, n);
    if (r && *r > 0) EVP_DigestUpdate(out_md, buf, *r);
    return r;
  }

  Result<size_t> ReadOutRaw(char* buf, size_t n) {
    if (!detected) CUBELET_TRY(Detect());
    if (eof_out) return 0;
    if (!gzip) {
      if (in_off == in_len) {
        auto r = RawRead();
        if (!r) return tl::unexpected(r.error());
        if (*r == 0) {
          eof_out = true;
          return 0;
        }
      }
      size_t k = std::min(n, in_len - in_off);
      memcpy(buf, in.data() + in_off, k);
      in_off += k;
      return k;
    }
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = static_cast<uInt>(n);
    while (zs.avail_out == n) {
      if (zs.avail_in == 0) {
        auto r = RawRead();
        if (!r) return tl::unexpected(r.error());
        if (*r == 0) return base::Fail("gzip stream truncated");
        zs.next_in = in.data();
        zs.avail_in = static_cast<uInt>(in_len);
      }
      int rc = inflate(&zs, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        eof_out = true;
        break;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return base::Fail(std::string("gzip: ") + (zs.msg ? zs.msg : "inflate error"));
      }
    }
    return n - zs.avail_out;
  }

  Result<> ReadFull(char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      auto r = ReadOut(buf + got, n - got);
      if (!r) return tl::unexpected(r.error());
      if (*r == 0) return base::Fail("tar stream truncated");
      got += *r;
    }
    return {};
  }

  Result<> Skip(uint64_t n) {
    char buf[8192];
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof buf));
      CUBELET_TRY(ReadFull(buf, k));
      n -= k;
    }
    return {};
  }
};

namespace {

bool ParseNumber(const char* p, size_t len, uint64_t* out) {
  if (len > 0 && (static_cast<unsigned char>(p[0]) & 0x80)) {  // base-256 (GNU)
    uint64_t v = static_cast<unsigned char>(p[0]) & 0x7f;
    for (size_t i = 1; i < len; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    *out = v;
    return true;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < len && (p[i] == ' ' || p[i] == 0)) ++i;
  for (; i < len && p[i] >= '0' && p[i] <= '7'; ++i) v = v * 8 + static_cast<uint64_t>(p[i] - '0');
  *out = v;
  return true;
}

std::string Field(const char* p, size_t len) { return std::string(p, strnlen(p, len)); }

// PAX extended header records: "<len> key=value\n".
void ParsePax(const std::string& data, std::string* path, std::string* link, uint64_t* size,
              bool* has_size) {
  size_t off = 0;
  while (off < data.size()) {
    size_t sp = data.find(' ', off);
    if (sp == std::string::npos) break;
    size_t len = strtoull(data.c_str() + off, nullptr, 10);
    if (len == 0 || off + len > data.size()) break;
    std::string rec = data.substr(sp + 1, off + len - sp - 2);  // drop trailing \n
    size_t eq = rec.find('=');
    if (eq != std::string::npos) {
      std::string k = rec.substr(0, eq), v = rec.substr(eq + 1);
      if (k == "path") *path = v;
      else if (k == "linkpath") *link = v;
      else if (k == "size") {
        *size = strtoull(v.c_str(), nullptr, 10);
        *has_size = true;
      }
    }
    off += len;
  }
}

}  // namespace

TarReader::TarReader(int fd) : impl_(std::make_unique<Impl>(fd)) {}
TarReader::~TarReader() = default;

Result<bool> TarReader::Next(TarEntry* e) {
  Impl& s = *impl_;
  CUBELET_TRY(s.Skip(s.remaining + s.padding));
  s.remaining = s.padding = 0;
  std::string long_name, long_link, pax_path, pax_link;
  uint64_t pax_size = 0;
  bool has_pax_size = false;
  while (true) {
    char h[512];
    // A clean end of stream before a header is an (unterminated) end of archive.
    size_t got = 0;
    while (got < sizeof h) {
      auto k = s.ReadOut(h + got, sizeof h - got);
      if (!k) return tl::unexpected(k.error());
      if (*k == 0) break;
      got += *k;
    }
    if (got == 0) return false;
    if (got < sizeof h) return base::Fail("tar stream truncated in a header");
    bool zero = true;
    for (char c : h) zero = zero && c == 0;
    if (zero) return false;  // end-of-archive marker
    uint64_t chk = 0, sum = 0;
    ParseNumber(h + 148, 8, &chk);
    for (int i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    if (chk != sum) return base::Fail("tar header checksum mismatch");
    uint64_t size = 0, mode = 0, uid = 0, gid = 0, mtime = 0, dmaj = 0, dmin = 0;
    ParseNumber(h + 124, 12, &size);
    ParseNumber(h + 100, 8, &mode);
    ParseNumber(h + 108, 8, &uid);
    ParseNumber(h + 116, 8, &gid);
    ParseNumber(h + 136, 12, &mtime);
    ParseNumber(h + 329, 8, &dmaj);
    ParseNumber(h + 337, 8, &dmin);
    char type = h[156];
    if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
      if (size > (1u << 20)) return base::Fail("tar extended header too large");
      std::string data(size, '\0');
      CUBELET_TRY(s.ReadFull(data.data(), size));
      CUBELET_TRY(s.Skip((512 - size % 512) % 512));
      if (type == 'L') long_name = Field(data.data(), data.size());
      else if (type == 'K') long_link = Field(data.data(), data.size());
      else if (type == 'x') ParsePax(data, &pax_path, &pax_link, &pax_size, &has_pax_size);
      continue;
    }
    TarEntry out;
    std::string name = Field(h, 100);
    if (memcmp(h + 257, "ustar", 5) == 0) {
      std::string prefix = Field(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    out.path = !pax_path.empty() ? pax_path : !long_name.empty() ? long_name : name;
    out.linkname = !pax_link.empty() ? pax_link : !long_link.empty() ? long_link : Field(h + 157, 100);
    if (has_pax_size) size = pax_size;
    out.mode = static_cast<uint32_t>(mode & 07777);
    out.uid = static_cast<int64_t>(uid);
    out.gid = static_cast<int64_t>(gid);
    out.mtime = static_cast<int64_t>(mtime);
    out.devmajor = static_cast<uint32_t>(dmaj);
    out.devminor = static_cast<uint32_t>(dmin);
    switch (type) {
      case '0': case '\0': case '7': out.type = TarEntry::Type::kFile; break;
      case '1': out.type = TarEntry::Type::kHardlink; break;
      case '2': out.type = TarEntry::Type::kSymlink; break;
      case '3': out.type = TarEntry::Type::kCharDev; break;
      case '4': out.type = TarEntry::Type::kBlockDev; break;
      case '5': out.type = TarEntry::Type::kDir; break;
      case '6': out.type = TarEntry::Type::kFifo; break;
      default: out.type = TarEntry::Type::kOther;
    }
    // Only regular files (and unknown types) carry data.
    bool has_data = out.type == TarEntry::Type::kFile || out.type == TarEntry::Type::kOther;
    out.size = has_data ? size : 0;
    s.remaining = out.size;
    s.padding = (512 - out.size % 512) % 512;
    *e = std::move(out);
    return true;
  }
}

Result<size_t> TarReader::Read(char* buf, size_t n) {
  Impl& s = *impl_;
  if (s.remaining == 0) return 0;
  size_t k = static_cast<size_t>(std::min<uint64_t>(n, s.remaining));
  auto r = s.ReadOut(buf, k);
  if (!r) return r;
  if (*r == 0) return base::Fail("tar stream truncated in file data");
  s.remaining -= *r;
  return *r;
}

Result<> TarReader::Drain() {
  Impl& s = *impl_;
  char buf[8192];
  while (true) {
    auto r = s.ReadOut(buf, sizeof buf);
    if (!r) return tl::unexpected(r.error());
    if (*r == 0) break;
  }
  // For gzip, bytes after the end of the deflate stream still count for the digest.
  while (!s.eof_raw) {
    auto r = s.RawRead();
    if (!r) return tl::unexpected(r.error());
  }
  return {};
}

std::string TarReader::Sha256Hex() { return FinalHex(impl_->md); }
std::string TarReader::DiffIdHex() { return FinalHex(impl_->out_md); }

std::string TarReader::FinalHex(void* ctx) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, static_cast<EVP_MD_CTX*>(ctx));
  EVP_DigestFinal_ex(copy, d, &len);
  EVP_MD_CTX_free(copy);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[d[i] >> 4];
    out += hex[d[i] & 15];
  }
  return out;
}

}  // namespace runtime
