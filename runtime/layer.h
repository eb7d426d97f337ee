#pragma once
// Applies one image layer (a tar stream) onto a root directory: OCI whiteouts (.wh.NAME and
// the opaque .wh..wh..opq), hardlinks and symlinks kept inside the root, device nodes refused,
// paths that would escape the root rejected. Every path is resolved inside the root
// (openat2 RESOLVE_IN_ROOT), so a symlink planted by an earlier entry cannot redirect a write.
#include <string>

#include "base/result.h"
#include "runtime/tar_reader.h"

namespace runtime {

using base::Result;

struct LayerStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t skipped_devices = 0;
};

Result<LayerStats> ApplyLayer(const std::string& root, TarReader& tar);

// Cleans a tar path: strips leading "/" and "./", drops "." components; fails on "..".
Result<std::string> CleanLayerPath(const std::string& path);

// rm -rf of `name` inside directory `dirfd`, never following symlinks.
Result<> RemoveAt(int dirfd, const std::string& name);

// Recursive copy of a directory tree (files, dirs, symlinks, hardlinks kept as copies), used to
// import a plain rootfs and for the no-overlay fallback.
Result<> CopyTree(const std::string& from, const std::string& to);

}  // namespace runtime
