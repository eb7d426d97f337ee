#pragma once
// Applies one image layer (a tar stream) onto a root directory: OCI whiteouts (.wh.NAME and
// the opaque .wh..wh..opq), hardlinks and symlinks kept inside the root, device nodes refused,
// paths that would escape the root rejected. Every path is resolved inside the root
// (openat2 RESOLVE_IN_ROOT), so a symlink planted by an earlier entry cannot redirect a write.
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/tar_reader.h"

namespace runtime {

using base::Result;

struct LayerStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t skipped_devices = 0;
  bool oci_markers = false;  // kDiff only: whiteouts kept as .wh. files (no CAP_MKNOD/SYS_ADMIN)
};

enum class LayerFormat {
  // Applied onto the tree of the layers below: whiteouts delete, opaque markers clear.
  kMerged,
  // One layer on its own, as an overlayfs lower directory: a whiteout becomes a 0/0 character
  // device, an opaque directory gets trusted.overlay.opaque=y (containerd's overlay format).
  // Where that is not permitted the OCI marker files are kept (oci_markers) and the layer can
  // only be used through CopyLayersMerged.
  kDiff,
};

Result<LayerStats> ApplyLayer(const std::string& root, TarReader& tar,
                              LayerFormat format = LayerFormat::kMerged);

// The merged tree of `layers` (kDiff directories, bottom first) copied into `to`, whiteouts
// and opaque directories honoured (both the overlay and the OCI marker forms).
Result<> CopyLayersMerged(const std::vector<std::string>& layers, const std::string& to);

// The contents of `rel` ("etc/passwd") in the merged view of `layers` (kDiff, bottom first),
// without following symlinks out of the view; nullopt when absent.
Result<std::optional<std::string>> ReadMergedFile(const std::vector<std::string>& layers,
                                                  const std::string& rel);

// Cleans a tar path: strips leading "/" and "./", drops "." components; fails on "..".
Result<std::string> CleanLayerPath(const std::string& path);

// rm -rf of `name` inside directory `dirfd`, never following symlinks.
Result<> RemoveAt(int dirfd, const std::string& name);

// Recursive copy of a directory tree (files, dirs, symlinks, hardlinks kept as copies), used to
// import a plain rootfs and for the no-overlay fallback.
Result<> CopyTree(const std::string& from, const std::string& to);

}  // namespace runtime
