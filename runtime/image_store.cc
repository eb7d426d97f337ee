#include "runtime/image_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "base/fd.h"
#include "base/file.h"
#include "base/log.h"
#include "base/scope_guard.h"
#include "base/strings.h"
#include "base/time.h"
#include "runtime/digest.h"
#include "runtime/image_ref.h"
#include "runtime/layer.h"
#include "runtime/tar_reader.h"

namespace runtime {

using nlohmann::json;

namespace {

std::vector<std::string> Strings(const json& j) {
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const auto& v : j) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

Result<json> ReadJson(const std::string& path) {
  auto text = base::ReadFile(path);
  if (!text) return tl::unexpected(text.error());
  try {
    return json::parse(*text);
  } catch (const std::exception& e) {
    return base::Fail("parse '" + path + "': " + e.what());
  }
}

std::string BlobPath(const std::string& layout, const std::string& digest) {
  return layout + "/blobs/" + base::Join(base::Split(digest, ':'), "/");
}

Result<std::string> VerifiedBlob(const std::string& layout, const std::string& digest) {
  if (!base::StartsWith(digest, "sha256:") || !IsSha256Hex(digest.substr(7))) {
    return base::Fail("unsupported digest '" + digest + "'");
  }
  std::string path = BlobPath(layout, digest);
  auto data = base::ReadFile(path);
  if (!data) return tl::unexpected(data.error());
  if (Sha256Hex(*data) != digest.substr(7)) {
    return base::Fail("blob " + digest + " does not match its digest");
  }
  return data;
}

}  // namespace

Result<ImageConfig> ParseImageConfig(const std::string& text) {
  try {
    json j = json::parse(text);
    const json& c = j.contains("config") && j["config"].is_object() ? j["config"] : json::object();
    ImageConfig out;
    if (c.contains("Entrypoint")) out.entrypoint = Strings(c["Entrypoint"]);
    if (c.contains("Cmd")) out.cmd = Strings(c["Cmd"]);
    if (c.contains("Env")) out.env = Strings(c["Env"]);
    if (c.contains("WorkingDir") && c["WorkingDir"].is_string()) out.working_dir = c["WorkingDir"];
    if (c.contains("User") && c["User"].is_string()) out.user = c["User"];
    if (c.contains("StopSignal") && c["StopSignal"].is_string()) out.stop_signal = c["StopSignal"];
    return out;
  } catch (const std::exception& e) {
    return base::Fail(std::string("parse image config: ") + e.what());
  }
}

Result<std::vector<std::string>> ParseDiffIds(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return base::Fail("image config is not a JSON object");
  std::vector<std::string> out;
  const json& rootfs = j.contains("rootfs") ? j["rootfs"] : json::object();
  if (rootfs.is_object() && rootfs.contains("diff_ids")) {
    if (!rootfs["diff_ids"].is_array()) return base::Fail("image config: rootfs.diff_ids is not a list");
    for (const auto& d : rootfs["diff_ids"]) {
      if (!d.is_string() || !IsSha256Digest(d.get<std::string>())) {
        return base::Fail("image config: bad diff_id " + d.dump());
      }
      out.push_back(d.get<std::string>());
    }
  }
  return out;
}

std::string ImageConfigToJson(const ImageConfig& c, const std::vector<std::string>& diff_ids) {
  json cfg = json::object();
  if (!c.entrypoint.empty()) cfg["Entrypoint"] = c.entrypoint;
  if (!c.cmd.empty()) cfg["Cmd"] = c.cmd;
  if (!c.env.empty()) cfg["Env"] = c.env;
  if (!c.working_dir.empty()) cfg["WorkingDir"] = c.working_dir;
  if (!c.user.empty()) cfg["User"] = c.user;
  if (!c.stop_signal.empty()) cfg["StopSignal"] = c.stop_signal;
  json j = {{"architecture", "amd64"},
            {"os", "linux"},
            {"created", base::FormatRfc3339Micro(std::chrono::system_clock::now())},
            {"config", cfg},
            {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  return j.dump();
}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& dir) {
  std::unique_ptr<ImageStore> s(new ImageStore(dir));
  CUBELET_TRY_CTX(base::MkdirAll(dir + "/images", 0700), "image store");
  // Staging leftovers of a crash are garbage.
  (void)base::RemoveAll(dir + "/tmp");
  CUBELET_TRY(s->content_.Init());
  CUBELET_TRY_CTX(base::MkdirAll(s->EmptyLayerDir(), 0755), "image store");
  CUBELET_TRY(s->Migrate());
  CUBELET_TRY(s->Load());
  return s;
}

Result<> ImageStore::Migrate() {
  std::string marker = dir_ + "/store.json";
  if (auto text = base::ReadFile(marker)) {
    json j = json::parse(*text, nullptr, false);
    int v = j.is_object() ? j.value("version", 0) : 0;
    if (v == kFormatVersion) return {};
    if (v > kFormatVersion) {
      return base::Fail("image store '" + dir_ + "' has format version " + std::to_string(v) +
                        ", newer than this cubelet reads (" + std::to_string(kFormatVersion) +
                        "): use a newer cubelet or another --root-dir");
    }
    return base::Fail("image store '" + dir_ + "': unreadable " + marker);
  }
  // Format 1: images/<id>/{rootfs/,config.json,meta.json{size}}. Each rootfs (already merged)
  // becomes one layer, moved, not copied; the config becomes a blob. A symlink stays at the
  // old rootfs path for containers created (not yet started) by the older cubelet.
  size_t migrated = 0;
  for (const auto& id : base::ListDir(dir_ + "/images")) {
    if (!IsSha256Hex(id)) continue;
    std::string idir = dir_ + "/images/" + id;
    if (base::PathExists(idir + "/meta.json") && !base::PathExists(idir + "/config.json")) continue;
    std::string what = "migrate image sha256:" + id + " in '" + dir_ + "' to the layered format";
    auto config = base::ReadFile(idir + "/config.json");
    if (!config || !base::PathExists(idir + "/rootfs")) {
      base::log::Warn("dropping an incomplete image of the old store format", {{"image", id}});
      (void)base::RemoveAll(idir);
      continue;
    }
    CUBELET_TRY_CTX(content_.PutBlob(*config, "sha256:" + id), what);
    std::string layer = "sha256:" + Sha256Hex("cubelet-migrated-rootfs\n" + id);
    auto info = content_.AddTreeLayer(idir + "/rootfs", layer, /*move=*/true);
    if (!info) return tl::unexpected(info.error().Wrap(what));
    uint64_t size = info->size;
    if (auto meta = ReadJson(idir + "/meta.json"); meta && meta->is_object()) {
      size = meta->value("size", size);
    }
    json meta = {{"diff_ids", {layer}}, {"size", size}, {"migrated", true}};
    CUBELET_TRY_CTX(base::WriteFileAtomic(idir + "/meta.json", meta.dump()), what);
    (void)unlink((idir + "/config.json").c_str());
    if (symlink(content_.LayerDir(layer).c_str(), (idir + "/rootfs").c_str()) != 0) {
      return base::Errno(what + ": symlink the old rootfs path");
    }
    ++migrated;
  }
  json v = {{"version", kFormatVersion}};
  CUBELET_TRY_CTX(base::WriteFileAtomic(marker, v.dump()), "image store '" + dir_ + "'");
  if (migrated > 0) {
    base::log::Info("image store migrated to the layered format",
                    {{"dir", dir_}, {"images", migrated}});
  }
  return {};
}

bool ImageStore::HasImageLocked(const std::string& id) const {
  return IsSha256Hex(id) && base::PathExists(dir_ + "/images/" + id + "/meta.json");
}

Result<> ImageStore::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  refs_.clear();
  std::string path = dir_ + "/refs.json";
  if (!base::PathExists(path)) return {};
  auto j = ReadJson(path);
  if (!j) return tl::unexpected(j.error());
  if (!j->is_object()) return base::Fail("'" + path + "' is not a JSON object");
  for (auto it = j->begin(); it != j->end(); ++it) {
    if (!it.value().is_string()) continue;
    std::string id = it.value();
    if (HasImageLocked(id)) refs_.emplace_back(it.key(), id);
  }
  return {};
}

Result<> ImageStore::SaveRefsLocked() {
  json j = json::object();
  for (const auto& [name, id] : refs_) j[name] = id;
  return base::WriteFileAtomic(dir_ + "/refs.json", j.dump(2));
}

ImageRecord ImageStore::RecordLocked(const std::string& id) const {
  ImageRecord r;
  if (auto cached = records_.find(id); cached != records_.end()) {
    r = cached->second;
  } else {
    r.id = id;
    bool complete = false;
    if (auto meta = ReadJson(dir_ + "/images/" + id + "/meta.json"); meta && meta->is_object()) {
      complete = true;
      r.size = meta->value("size", uint64_t{0});
      for (const auto& d : Strings(meta->value("diff_ids", json::array()))) {
        r.diff_ids.push_back(d);
        r.layers.push_back(content_.LayerDir(d));
        auto info = content_.Layer(d);
        if (!info) complete = false;  // not cached: read again next time
        if (!info || info->oci_markers) r.overlay_ready = false;
      }
    }
    if (auto cfg = content_.ReadBlob("sha256:" + id)) {
      if (auto c = ParseImageConfig(*cfg)) r.config = *c;
      else complete = false;
    } else {
      complete = false;
    }
    if (complete) records_[id] = r;
  }
  for (const auto& [name, rid] : refs_) {
    if (rid != id) continue;
    if (name.find('@') != std::string::npos) r.repo_digests.push_back(name);
    else r.repo_tags.push_back(name);
  }
  return r;
}

std::optional<ImageRecord> ImageStore::LoadImageLocked(const std::string& id) const {
  if (!HasImageLocked(id)) return std::nullopt;
  return RecordLocked(id);
}

std::string ImageStore::ResolveLocked(const std::string& ref) const {
  std::string id = ImageIdFromRef(ref);
  if (!id.empty()) return HasImageLocked(id) ? id : "";
  auto parsed = ParseImageRef(ref);
  if (!parsed) return "";
  std::vector<std::string> keys;
  if (!parsed->digest.empty()) keys.push_back(parsed->Digested());
  if (!parsed->tag.empty()) keys.push_back(parsed->Tagged());
  for (const auto& k : keys) {
    for (const auto& [name, rid] : refs_) {
      if (name == k) return rid;
    }
  }
  return "";
}

std::optional<ImageRecord> ImageStore::Find(const std::string& ref) const {
  std::lock_guard<std::mutex> lock(mu_);
  return LoadImageLocked(ResolveLocked(ref));
}

std::vector<ImageRecord> ImageStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ImageRecord> out;
  for (const auto& n : base::ListDir(dir_ + "/images")) {
    if (HasImageLocked(n)) out.push_back(RecordLocked(n));
  }
  return out;
}

Result<> ImageStore::Remove(const std::string& ref, const std::set<std::string>& in_use) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::string id = ResolveLocked(ref);
    if (id.empty()) return {};
    if (in_use.count(id)) {
      return base::Fail("image \"" + ref + "\" (sha256:" + id + ") is in use by a container");
    }
    std::erase_if(refs_, [&](const auto& p) { return p.second == id; });
    records_.erase(id);
    CUBELET_TRY_CTX(SaveRefsLocked(), "remove image \"" + ref + "\"");
    // Rename first so that a half-removed image is never visible under its id.
    std::string trash = StagingDir() + "/removing-" + id + "-" + base::RandomAlnum(6);
    if (rename((dir_ + "/images/" + id).c_str(), trash.c_str()) != 0) {
      return base::Errno("remove image \"" + ref + "\"");
    }
    CUBELET_TRY_CTX(base::RemoveAll(trash), "remove image \"" + ref + "\"");
  }
  auto gc = GarbageCollect();
  if (!gc) return tl::unexpected(gc.error().Wrap("remove image \"" + ref + "\""));
  return {};
}

Result<ImageGcStats> ImageStore::GarbageCollect() {
  ImageGcStats stats;
  std::unique_lock<std::shared_mutex> content(content_mu_, std::try_to_lock);
  if (!content.owns_lock()) {
    stats.skipped = true;  // a pull or import is adding content; it collects when it is done
    return stats;
  }
  std::set<std::string> layers, blobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& id : base::ListDir(dir_ + "/images")) {
      if (!HasImageLocked(id)) continue;
      blobs.insert("sha256:" + id);
      auto meta = ReadJson(dir_ + "/images/" + id + "/meta.json");
      if (!meta || !meta->is_object()) continue;
      for (const auto& l : Strings(meta->value("diff_ids", json::array()))) layers.insert(l);
      std::string manifest = meta->value("manifest", "");
      if (!manifest.empty()) blobs.insert(manifest);
    }
  }
  for (const auto& l : content_.ListLayers()) {
    if (layers.count(l)) {
      if (auto info = content_.Layer(l); info && !info->blob.empty()) blobs.insert(info->blob);
      continue;
    }
    CUBELET_TRY(content_.RemoveLayer(l));
    ++stats.layers_removed;
  }
  for (const auto& b : content_.ListBlobs()) {
    if (blobs.count(b)) continue;
    CUBELET_TRY(content_.RemoveBlob(b));
    ++stats.blobs_removed;
  }
  if (stats.layers_removed || stats.blobs_removed) {
    base::log::Info("image store: removed unused content",
                    {{"layers", stats.layers_removed}, {"blobs", stats.blobs_removed}});
  }
  return stats;
}

Result<ImageRecord> ImageStore::Commit(const std::string& config_json,
                                       const std::vector<std::string>& names, uint64_t size,
                                       const std::string& manifest) {
  std::string id = Sha256Hex(config_json);
  auto diff_ids = ParseDiffIds(config_json);
  if (!diff_ids) return tl::unexpected(diff_ids.error());
  for (const auto& d : *diff_ids) {
    if (!content_.Layer(d)) return base::Fail("store image sha256:" + id + ": layer " + d + " is missing");
  }
  CUBELET_TRY_CTX(content_.PutBlob(config_json, "sha256:" + id), "store image sha256:" + id);
  std::lock_guard<std::mutex> lock(mu_);
  if (!HasImageLocked(id)) {
    records_.erase(id);
    std::string stage = StagingDir() + "/image-" + base::RandomAlnum(12);
    CUBELET_TRY(base::MkdirAll(stage, 0700));
    json meta = {{"diff_ids", *diff_ids}, {"size", size}};
    if (!manifest.empty()) meta["manifest"] = manifest;
    CUBELET_TRY(base::WriteFile(stage + "/meta.json", meta.dump()));
    std::string final_dir = dir_ + "/images/" + id;
    (void)base::RemoveAll(final_dir);
    if (rename(stage.c_str(), final_dir.c_str()) != 0) {
      (void)base::RemoveAll(stage);
      return base::Errno("store image " + id);
    }
  }
  for (const auto& n : names) {
    std::erase_if(refs_, [&](const auto& p) { return p.first == n; });
    refs_.emplace_back(n, id);
  }
  CUBELET_TRY(SaveRefsLocked());
  return RecordLocked(id);
}

Result<ImageRecord> ImageStore::Tag(const std::string& id, const std::vector<std::string>& names) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!HasImageLocked(id)) return base::Fail("image sha256:" + id + " is not in the store");
  for (const auto& n : names) {
    std::erase_if(refs_, [&](const auto& p) { return p.first == n; });
    refs_.emplace_back(n, id);
  }
  CUBELET_TRY(SaveRefsLocked());
  return RecordLocked(id);
}

Result<ImageRecord> ImageStore::ImportRootfs(const std::string& rootfs_dir, const std::string& name,
                                             const ImageConfig& config) {
  auto ref = ParseImageRef(name);
  if (!ref) return tl::unexpected(ref.error());
  std::string what = "import rootfs '" + rootfs_dir + "'";
  // The tree has no archive, so no diff_id: the layer gets an id of its own, unique per import.
  std::string layer = "sha256:" + Sha256Hex("cubelet-rootfs-import\n" + rootfs_dir + "\n" +
                                            base::RandomHexId());
  std::string config_json = ImageConfigToJson(config, {layer});
  auto lease = ContentLease();
  auto info = content_.AddTreeLayer(rootfs_dir, layer, /*move=*/false);
  if (!info) return tl::unexpected(info.error().Wrap(what));
  auto r = Commit(config_json, {ref->Tagged()}, info->size);
  if (!r) return tl::unexpected(r.error().Wrap(what));
  return r;
}

Result<ImageRecord> ImageStore::ImportOciLayout(const std::string& layout, const std::string& name) {
  auto fail = [&](const base::Error& e) {
    return tl::unexpected(e.Wrap("import OCI layout '" + layout + "'"));
  };
  auto index = ReadJson(layout + "/index.json");
  if (!index) return fail(index.error());
  std::optional<ImageRef> ref;
  if (!name.empty()) {
    auto r = ParseImageRef(name);
    if (!r) return fail(r.error());
    ref = *r;
  }
  const json& manifests = (*index)["manifests"];
  if (!manifests.is_array() || manifests.empty()) return fail({0, "index.json has no manifests"});
  // Pick the descriptor: matching ref.name annotation (a tag or a full name), else the first.
  json desc = manifests[0];
  for (const auto& m : manifests) {
    std::string rn = m.value("annotations", json::object()).value("org.opencontainers.image.ref.name", "");
    if (ref && !rn.empty() && (rn == ref->tag || rn == name || rn == ref->Tagged())) {
      desc = m;
      break;
    }
  }
  if (!ref) {
    std::string rn = desc.value("annotations", json::object()).value("org.opencontainers.image.ref.name", "");
    auto r = ParseImageRef(rn);
    if (rn.empty() || !r || rn.find('/') == std::string::npos) {
      return fail({0, "no image name given and the layout does not carry a full reference"});
    }
    ref = *r;
  }
  // A nested index (multi-platform): pick linux/amd64.
  for (int depth = 0; depth < 2; ++depth) {
    std::string mt = desc.value("mediaType", "");
    if (mt != "application/vnd.oci.image.index.v1+json" &&
        mt != "application/vnd.docker.distribution.manifest.list.v2+json") {
      break;
    }
    auto blob = VerifiedBlob(layout, desc.value("digest", ""));
    if (!blob) return fail(blob.error());
    json idx = json::parse(*blob, nullptr, false);
    bool found = false;
    for (const auto& m : idx.value("manifests", json::array())) {
      auto p = m.value("platform", json::object());
      if (p.value("os", "") == "linux" && p.value("architecture", "") == "amd64") {
        desc = m;
        found = true;
        break;
      }
    }
    if (!found) return fail({0, "no linux/amd64 manifest in the image index"});
  }
  std::string manifest_digest = desc.value("digest", "");
  auto mblob = VerifiedBlob(layout, manifest_digest);
  if (!mblob) return fail(mblob.error());
  json manifest = json::parse(*mblob, nullptr, false);
  if (manifest.is_discarded()) return fail({0, "manifest " + manifest_digest + " is not JSON"});
  std::string config_digest = manifest["config"].value("digest", "");
  auto config = VerifiedBlob(layout, config_digest);
  if (!config) return fail(config.error());
  if (auto c = ParseImageConfig(*config); !c) return fail(c.error());
  auto diff_ids = ParseDiffIds(*config);
  if (!diff_ids) return fail(diff_ids.error());
  const json layers = manifest.value("layers", json::array());
  if (layers.size() != diff_ids->size()) {
    return fail({0, "the manifest has " + std::to_string(layers.size()) + " layers, the config " +
                        std::to_string(diff_ids->size()) + " diff_ids"});
  }

  auto lease = ContentLease();
  uint64_t size = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string digest = layers[i].value("digest", "");
    std::string mt = layers[i].value("mediaType", "");
    if (mt.find("zstd") != std::string::npos) return fail({0, "zstd layers are not supported"});
    if (!IsSha256Digest(digest)) return fail({0, "bad layer digest '" + digest + "'"});
    const std::string& diff_id = (*diff_ids)[i];
    if (auto have = content_.Layer(diff_id)) {
      size += have->size;
      continue;
    }
    // Copied into the store (verified on the way), then unpacked from there.
    if (!content_.HasBlob(digest)) {
      std::string tmp = StagingDir() + "/blob-" + base::RandomAlnum(12);
      base::UniqueFd in(open(BlobPath(layout, digest).c_str(), O_RDONLY | O_CLOEXEC));
      if (!in) return fail(base::Errno("open layer " + digest).value());
      base::UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!out) return fail(base::Errno("create " + tmp).value());
      while (true) {
        ssize_t n = copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
        if (n < 0) {
          unlink(tmp.c_str());
          return fail(base::Errno("copy layer " + digest).value());
        }
        if (n == 0) break;
      }
      out.reset();
      if (auto put = content_.PutBlobFile(tmp, digest); !put) {
        unlink(tmp.c_str());
        return fail(put.error());
      }
    }
    auto info = content_.UnpackLayer(content_.BlobPath(digest), digest, diff_id);
    if (!info) return fail(info.error());
    size += info->size;
  }
  if (auto put = content_.PutBlob(*mblob, manifest_digest); !put) return fail(put.error());
  std::vector<std::string> names{ref->Tagged(), ref->Repository() + "@" + manifest_digest};
  if (ref->tag.empty()) names.erase(names.begin());
  auto rec = Commit(*config, names, size, manifest_digest);
  if (!rec) return fail(rec.error());
  return rec;
}

}  // namespace runtime
