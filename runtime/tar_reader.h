#pragma once
// A small streaming tar reader (ustar, GNU long names, PAX path/linkpath/size) over an optionally
// gzip-compressed byte stream, with the sha256 of the raw (compressed) bytes (the blob digest)
// and of the uncompressed stream (the layer's diff_id) computed on the way.
// Enough for OCI image layers; libarchive is deliberately not a dependency.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace runtime {

using base::Result;

struct TarEntry {
  enum class Type { kFile, kHardlink, kSymlink, kCharDev, kBlockDev, kDir, kFifo, kOther };
  Type type = Type::kFile;
  std::string path;       // as stored (not yet cleaned)
  std::string linkname;
  uint32_t mode = 0;      // permission bits incl. setuid/setgid/sticky
  int64_t uid = 0, gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;
  uint32_t devmajor = 0, devminor = 0;
};

class TarReader {
 public:
  // Reads from `fd` (not owned). Compression (gzip or none) is detected from the first bytes.
  explicit TarReader(int fd);
  ~TarReader();
  // Next entry header; false at end of archive. Unread data of the previous entry is skipped.
  Result<bool> Next(TarEntry* entry);
  // Reads up to n bytes of the current entry's data; 0 at its end.
  Result<size_t> Read(char* buf, size_t n);
  // Reads the rest of the archive stream (trailing padding) so that the digest covers it all.
  Result<> Drain();
  // Hex sha256 of every raw byte read from the fd so far.
  std::string Sha256Hex();
  // Hex sha256 of every uncompressed byte so far (after Drain(): the layer's diff_id).
  std::string DiffIdHex();

 private:
  static std::string FinalHex(void* md_ctx);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace runtime
