#include "runtime/content_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/file.h"
#include "base/scope_guard.h"
#include "base/strings.h"
#include "runtime/digest.h"
#include "runtime/image_ref.h"
#include "runtime/layer.h"
#include "runtime/tar_reader.h"

namespace runtime {

using nlohmann::json;

namespace {

std::string Hex(const std::string& digest) { return digest.substr(7); }

}  // namespace

bool IsSha256Digest(std::string_view d) {
  return d.size() == 71 && d.substr(0, 7) == "sha256:" && IsSha256Hex(d.substr(7));
}

Result<> ContentStore::Init() {
  for (const auto& d : {dir_ + "/blobs/sha256", dir_ + "/layers", dir_ + "/tmp"}) {
    CUBELET_TRY_CTX(base::MkdirAll(d, 0700), "image store");
  }
  return {};
}

std::string ContentStore::BlobPath(const std::string& digest) const {
  return dir_ + "/blobs/sha256/" + Hex(digest);
}

bool ContentStore::HasBlob(const std::string& digest) const {
  return IsSha256Digest(digest) && base::PathExists(BlobPath(digest));
}

Result<> ContentStore::PutBlobFile(const std::string& file, const std::string& digest) {
  if (!IsSha256Digest(digest)) return base::Fail("unsupported digest \"" + digest + "\"");
  auto sum = Sha256File(file);
  if (!sum) return tl::unexpected(sum.error());
  if (*sum != Hex(digest)) {
    return base::Fail("blob " + digest + " does not match its digest (got sha256:" + *sum + ")");
  }
  if (rename(file.c_str(), BlobPath(digest).c_str()) != 0) {
    return base::Errno("store blob " + digest);
  }
  return {};
}

Result<> ContentStore::PutBlob(std::string_view data, const std::string& digest) {
  if (!IsSha256Digest(digest)) return base::Fail("unsupported digest \"" + digest + "\"");
  if (Sha256Hex(data) != Hex(digest)) {
    return base::Fail("blob " + digest + " does not match its digest");
  }
  if (HasBlob(digest)) return {};
  std::string tmp = StagingDir() + "/blob-" + base::RandomAlnum(12);
  CUBELET_TRY(base::WriteFile(tmp, data));
  if (rename(tmp.c_str(), BlobPath(digest).c_str()) != 0) {
    unlink(tmp.c_str());
    return base::Errno("store blob " + digest);
  }
  return {};
}

Result<std::string> ContentStore::ReadBlob(const std::string& digest) const {
  if (!IsSha256Digest(digest)) return base::Fail("unsupported digest \"" + digest + "\"");
  return base::ReadFile(BlobPath(digest));
}

std::string ContentStore::LayerDir(const std::string& diff_id) const {
  return dir_ + "/layers/" + Hex(diff_id) + "/diff";
}

std::optional<LayerInfo> ContentStore::Layer(const std::string& diff_id) const {
  if (!IsSha256Digest(diff_id)) return std::nullopt;
  auto text = base::ReadFile(dir_ + "/layers/" + Hex(diff_id) + "/meta.json");
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  LayerInfo info;
  info.diff_id = diff_id;
  info.blob = j.value("blob", "");
  info.size = j.value("size", uint64_t{0});
  info.oci_markers = j.value("oci_markers", false);
  return info;
}

Result<> ContentStore::CommitLayer(const std::string& stage, const LayerInfo& info) {
  json meta = {{"diff_id", info.diff_id},
               {"blob", info.blob},
               {"size", info.size},
               {"oci_markers", info.oci_markers}};
  CUBELET_TRY(base::WriteFile(stage + "/meta.json", meta.dump()));
  std::string final_dir = dir_ + "/layers/" + Hex(info.diff_id);
  if (rename(stage.c_str(), final_dir.c_str()) != 0) {
    // Someone stored the same layer meanwhile (ENOTEMPTY/EEXIST): theirs is as good.
    if ((errno == ENOTEMPTY || errno == EEXIST) && Layer(info.diff_id)) {
      (void)base::RemoveAll(stage);
      return {};
    }
    return base::Errno("store layer " + info.diff_id);
  }
  return {};
}

Result<LayerInfo> ContentStore::UnpackLayer(const std::string& blob_path,
                                            const std::string& blob_digest,
                                            const std::string& diff_id) {
  if (!IsSha256Digest(blob_digest)) return base::Fail("bad layer digest \"" + blob_digest + "\"");
  if (!IsSha256Digest(diff_id)) return base::Fail("bad layer diff_id \"" + diff_id + "\"");
  if (auto have = Layer(diff_id)) return *have;
  std::string stage = StagingDir() + "/layer-" + base::RandomAlnum(12);
  auto cleanup = base::Defer([&] { (void)base::RemoveAll(stage); });
  CUBELET_TRY(base::MkdirAll(stage + "/diff", 0755));
  base::UniqueFd fd(open(blob_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return base::Errno("open layer " + blob_digest);
  TarReader tar(fd.get());
  auto stats = ApplyLayer(stage + "/diff", tar, LayerFormat::kDiff);
  if (!stats) return tl::unexpected(stats.error().Wrap("layer " + blob_digest));
  CUBELET_TRY_CTX(tar.Drain(), "layer " + blob_digest);
  if (tar.Sha256Hex() != Hex(blob_digest)) {
    return base::Fail("layer " + blob_digest + " does not match its digest");
  }
  if (tar.DiffIdHex() != Hex(diff_id)) {
    return base::Fail("layer " + blob_digest + ": its uncompressed content (sha256:" +
                      tar.DiffIdHex() + ") does not match the config's diff_id " + diff_id);
  }
  LayerInfo info{diff_id, blob_digest, stats->bytes, stats->oci_markers};
  CUBELET_TRY(CommitLayer(stage, info));
  return info;
}

Result<LayerInfo> ContentStore::AddTreeLayer(const std::string& tree, const std::string& id,
                                             bool move) {
  if (!IsSha256Digest(id)) return base::Fail("bad layer id \"" + id + "\"");
  if (auto have = Layer(id)) return *have;
  std::string stage = StagingDir() + "/layer-" + base::RandomAlnum(12);
  auto cleanup = base::Defer([&] { (void)base::RemoveAll(stage); });
  CUBELET_TRY(base::MkdirAll(stage, 0755));
  if (move) {
    if (rename(tree.c_str(), (stage + "/diff").c_str()) != 0) {
      return base::Errno("move '" + tree + "' into the layer store");
    }
  } else {
    CUBELET_TRY(CopyTree(tree, stage + "/diff"));
  }
  uint64_t size = 0;
  std::vector<std::string> stack{stage + "/diff"};
  while (!stack.empty()) {
    std::string d = stack.back();
    stack.pop_back();
    for (const auto& n : base::ListDir(d)) {
      struct stat st;
      if (lstat((d + "/" + n).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) stack.push_back(d + "/" + n);
      else if (S_ISREG(st.st_mode)) size += static_cast<uint64_t>(st.st_size);
    }
  }
  LayerInfo info{id, "", size, false};
  CUBELET_TRY(CommitLayer(stage, info));
  return info;
}

std::vector<std::string> ContentStore::ListLayers() const {
  std::vector<std::string> out;
  for (const auto& n : base::ListDir(dir_ + "/layers")) {
    if (IsSha256Hex(n)) out.push_back("sha256:" + n);
  }
  return out;
}

std::vector<std::string> ContentStore::ListBlobs() const {
  std::vector<std::string> out;
  for (const auto& n : base::ListDir(dir_ + "/blobs/sha256")) {
    if (IsSha256Hex(n)) out.push_back("sha256:" + n);
  }
  return out;
}

Result<> ContentStore::RemoveLayer(const std::string& diff_id) {
  if (!IsSha256Digest(diff_id)) return base::Fail("bad layer id \"" + diff_id + "\"");
  // Renamed away first: a half-removed layer is never visible under its id.
  std::string trash = StagingDir() + "/removing-" + Hex(diff_id) + "-" + base::RandomAlnum(6);
  if (rename((dir_ + "/layers/" + Hex(diff_id)).c_str(), trash.c_str()) != 0) {
    if (errno == ENOENT) return {};
    return base::Errno("remove layer " + diff_id);
  }
  return base::RemoveAll(trash);
}

Result<> ContentStore::RemoveBlob(const std::string& digest) {
  if (!IsSha256Digest(digest)) return base::Fail("bad blob digest \"" + digest + "\"");
  if (unlink(BlobPath(digest).c_str()) != 0 && errno != ENOENT) {
    return base::Errno("remove blob " + digest);
  }
  return {};
}

}  // namespace runtime
