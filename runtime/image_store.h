#pragma once
// Local image store: <dir>/images/<id>/{rootfs/,config.json,meta.json} and <dir>/refs.json
// (normalised name:tag and name@digest -> image id). An image's rootfs is unpacked once and is
// the read-only lower layer of every container's overlay.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"

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
std::string ImageConfigToJson(const ImageConfig& config);

struct ImageRecord {
  std::string id;  // 64 hex (sha256 of the config blob)
  std::vector<std::string> repo_tags;
  std::vector<std::string> repo_digests;
  uint64_t size = 0;
  ImageConfig config;
  std::string rootfs;  // absolute path
};

class ImageStore {
 public:
  static Result<std::unique_ptr<ImageStore>> Open(const std::string& dir);

  // Imports the image from an OCI image layout directory (index.json, blobs/sha256/...): picks
  // the manifest whose org.opencontainers.image.ref.name matches `name`'s tag (or the only
  // one; linux/amd64 from a nested index), verifies every blob's sha256 and unpacks the layers.
  // `name` ("busybox", "localhost:5000/app:v1") is the reference it is tagged as.
  Result<ImageRecord> ImportOciLayout(const std::string& layout_dir, const std::string& name);
  // Makes an image from a plain directory tree (copied) and a config.
  Result<ImageRecord> ImportRootfs(const std::string& rootfs_dir, const std::string& name,
                                   const ImageConfig& config);
  // Stores an already unpacked image (used by the registry puller): moves `staged_rootfs`.
  Result<ImageRecord> Commit(const std::string& staged_rootfs, const std::string& config_json,
                             const std::vector<std::string>& names, uint64_t size);

  // Adds names to an image that is already stored (a pull whose config is known).
  Result<ImageRecord> Tag(const std::string& id, const std::vector<std::string>& names);

  // By name (normalised), name@digest, "sha256:<id>" or "<id>".
  std::optional<ImageRecord> Find(const std::string& ref) const;
  std::vector<ImageRecord> List() const;
  // Removes the image `ref` resolves to, unless its id is in `in_use`. Missing = success.
  Result<> Remove(const std::string& ref, const std::set<std::string>& in_use);
  // Directory for staging downloads and unpacking (same filesystem as the images).
  std::string StagingDir() const { return dir_ + "/tmp"; }
  const std::string& dir() const { return dir_; }

 private:
  explicit ImageStore(std::string dir) : dir_(std::move(dir)) {}
  Result<> Load();
  Result<> SaveRefsLocked();
  std::optional<ImageRecord> LoadImageLocked(const std::string& id) const;
  std::string ResolveLocked(const std::string& ref) const;
  ImageRecord RecordLocked(const std::string& id) const;

  std::string dir_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> refs_;  // name -> id (ordered, unique names)
};

}  // namespace runtime
