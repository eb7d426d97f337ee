#pragma once
// The content-addressed half of the image store:
//   <dir>/blobs/sha256/<hex>            blobs (manifests, configs, layer archives), verified
//   <dir>/layers/<diff-id hex>/diff/    a layer unpacked once, in the overlay form (LayerFormat
//                                       kDiff), shared by every image that has it
//   <dir>/layers/<diff-id hex>/meta.json  {diff_id, blob, size, oci_markers}
// Layers are keyed by diff_id (the sha256 of the uncompressed tar): an unpacked overlay layer
// does not depend on the layers below it, so the same layer is stored once whatever its parents.
// Everything is written into <dir>/tmp first and renamed into place, so a half-written blob or
// layer is never visible; concurrent writers of the same content both succeed.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace runtime {

using base::Result;

struct LayerInfo {
  std::string diff_id;  // "sha256:<hex>"
  std::string blob;     // "sha256:<hex>" of the archive it came from ("" when made from a tree)
  uint64_t size = 0;    // unpacked bytes
  bool oci_markers = false;  // whiteouts kept as .wh. files: not usable as an overlay lower dir
};

class ContentStore {
 public:
  explicit ContentStore(std::string dir) : dir_(std::move(dir)) {}
  Result<> Init();

  // "sha256:<hex>" -> <dir>/blobs/sha256/<hex>.
  std::string BlobPath(const std::string& digest) const;
  bool HasBlob(const std::string& digest) const;
  // Moves `file` into the store when its sha256 is `digest` (checked here).
  Result<> PutBlobFile(const std::string& file, const std::string& digest);
  Result<> PutBlob(std::string_view data, const std::string& digest);
  Result<std::string> ReadBlob(const std::string& digest) const;

  std::string LayerDir(const std::string& diff_id) const;  // .../layers/<hex>/diff
  std::optional<LayerInfo> Layer(const std::string& diff_id) const;
  // Unpacks the archive `blob_path` (gzip or plain tar) unless the layer is already stored.
  // The archive must hash to `blob_digest` and its uncompressed stream to `diff_id`.
  Result<LayerInfo> UnpackLayer(const std::string& blob_path, const std::string& blob_digest,
                                const std::string& diff_id);
  // A layer made from a directory tree (copied) or moved in (`move`, same filesystem), under
  // an id the caller chooses (rootfs imports and migrated stores have no archive).
  Result<LayerInfo> AddTreeLayer(const std::string& tree, const std::string& id, bool move);

  std::vector<std::string> ListLayers() const;  // diff ids
  std::vector<std::string> ListBlobs() const;   // digests
  Result<> RemoveLayer(const std::string& diff_id);
  Result<> RemoveBlob(const std::string& digest);

  std::string StagingDir() const { return dir_ + "/tmp"; }

 private:
  Result<> CommitLayer(const std::string& stage, const LayerInfo& info);
  std::string dir_;
};

// "sha256:<64 hex>".
bool IsSha256Digest(std::string_view digest);

}  // namespace runtime
