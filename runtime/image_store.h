#pragma once
// Local image store, content-addressed (format version 2, <dir>/store.json):
//   <dir>/blobs/sha256/<hex>, <dir>/layers/<diff-id>/   ContentStore (content_store.h)
//   <dir>/images/<id>/meta.json   {diff_ids (bottom first), size, manifest}; the id is the
//                                 config blob's sha256 and the config is that blob
//   <dir>/refs.json               normalised name:tag and name@digest -> image id
// A container's rootfs is an overlay of its image's layer directories (plus its own upper/work).
// Removing an image removes the layers and blobs no other image uses. A store of the first
// format (images/<id>/rootfs: one unpacked tree per image) is migrated in place when opened:
// each tree becomes one layer (a rename, no copy).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <shared_mutex>

#include "base/result.h"
#include "runtime/content_store.h"

namespace runtime {

using base::Result;

// The parts of the OCI image config a container uses.
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::string stop_signal;
};

Result<ImageConfig> ParseImageConfig(const std::string& json);
// rootfs.diff_ids of an image config ("sha256:..." each); fails when malformed.
Result<std::vector<std::string>> ParseDiffIds(const std::string& json);
std::string ImageConfigToJson(const ImageConfig& config,
                              const std::vector<std::string>& diff_ids = {});

struct ImageRecord {
  std::string id;  // 64 hex (sha256 of the config blob)
  std::vector<std::string> repo_tags;
  std::vector<std::string> repo_digests;
  uint64_t size = 0;
  ImageConfig config;
  std::vector<std::string> diff_ids;  // bottom layer first
  std::vector<std::string> layers;    // their directories (absolute), bottom first
  bool overlay_ready = true;          // every layer is in the overlay form
};

struct ImageGcStats {
  size_t layers_removed = 0;
  size_t blobs_removed = 0;
  bool skipped = false;  // content was being added: try again later
};

class ImageStore {
 public:
  static Result<std::unique_ptr<ImageStore>> Open(const std::string& dir);

  // Imports the image from an OCI image layout directory (index.json, blobs/sha256/...): picks
  // the manifest whose org.opencontainers.image.ref.name matches `name`'s tag (or the only
  // one; linux/amd64 from a nested index), verifies every blob's sha256 (and each layer's
  // diff_id) and unpacks the layers the store does not have yet.
  // `name` ("busybox", "localhost:5000/app:v1") is the reference it is tagged as.
  Result<ImageRecord> ImportOciLayout(const std::string& layout_dir, const std::string& name);
  // Makes a one-layer image from a plain directory tree (copied) and a config.
  Result<ImageRecord> ImportRootfs(const std::string& rootfs_dir, const std::string& name,
                                   const ImageConfig& config);
  // Records an image whose config is `config_json` and whose layers (the config's diff_ids)
  // are all in content() already; `manifest` is the digest of its manifest blob, if stored.
  Result<ImageRecord> Commit(const std::string& config_json, const std::vector<std::string>& names,
                             uint64_t size, const std::string& manifest = "");

  ContentStore& content() { return content_; }
  // Held (shared) while blobs and layers are added for an image not yet committed, so that
  // garbage collection does not take them away meanwhile.
  std::shared_lock<std::shared_mutex> ContentLease() {
    return std::shared_lock<std::shared_mutex>(content_mu_);
  }
  // Adds names to an image that is already stored (a pull whose config is known).
  Result<ImageRecord> Tag(const std::string& id, const std::vector<std::string>& names);

  // By name (normalised), name@digest, "sha256:<id>" or "<id>".
  std::optional<ImageRecord> Find(const std::string& ref) const;
  std::vector<ImageRecord> List() const;
  // Removes the image `ref` resolves to, unless its id is in `in_use`, then the layers and blobs
  // no image uses any more. Missing = success.
  Result<> Remove(const std::string& ref, const std::set<std::string>& in_use);
  // Removes layers and blobs no image references (skipped while content is being added).
  Result<ImageGcStats> GarbageCollect();
  // Directory for staging downloads and unpacking (same filesystem as the images).
  std::string StagingDir() const { return content_.StagingDir(); }
  const std::string& dir() const { return dir_; }
  // An empty directory, the lower layer of images without layers.
  std::string EmptyLayerDir() const { return dir_ + "/empty"; }

  static constexpr int kFormatVersion = 2;

 private:
  explicit ImageStore(std::string dir) : dir_(std::move(dir)), content_(dir_) {}
  Result<> Migrate();
  Result<> Load();
  Result<> SaveRefsLocked();
  std::optional<ImageRecord> LoadImageLocked(const std::string& id) const;
  std::string ResolveLocked(const std::string& ref) const;
  ImageRecord RecordLocked(const std::string& id) const;

  bool HasImageLocked(const std::string& id) const;

  std::string dir_;
  // What RecordLocked reads from the disk for an image id (meta.json, the layers' info, the
  // config blob: ~0.6 ms of file reads and JSON parsing per CreateContainer), kept for the
  // images the store has. An id names immutable content; the names (refs_) are not cached.
  // Dropped when the image is removed or committed again.
  mutable std::map<std::string, ImageRecord> records_;
  ContentStore content_;
  std::shared_mutex content_mu_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> refs_;  // name -> id (ordered, unique names)
};

}  // namespace runtime
