#include "runtime/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

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

uint64_t DirSize(const std::string& root) {
  uint64_t total = 0;
  std::vector<std::string> stack{root};
  while (!stack.empty()) {
    std::string d = stack.back();
    stack.pop_back();
    DIR* dir = opendir(d.c_str());
    if (!dir) continue;
    while (dirent* e = readdir(dir)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string p = d + "/" + n;
      struct stat st;
      if (lstat(p.c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) stack.push_back(p);
      else total += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    closedir(dir);
  }
  return total;
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

std::string ImageConfigToJson(const ImageConfig& c) {
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
            {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
  return j.dump();
}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& dir) {
  std::unique_ptr<ImageStore> s(new ImageStore(dir));
  CUBELET_TRY_CTX(base::MkdirAll(dir + "/images", 0700), "image store");
  // Staging leftovers of a crash are garbage.
  (void)base::RemoveAll(dir + "/tmp");
  CUBELET_TRY_CTX(base::MkdirAll(dir + "/tmp", 0700), "image store");
  CUBELET_TRY(s->Load());
  return s;
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
    if (base::PathExists(dir_ + "/images/" + id + "/rootfs")) refs_.emplace_back(it.key(), id);
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
  r.id = id;
  r.rootfs = dir_ + "/images/" + id + "/rootfs";
  for (const auto& [name, rid] : refs_) {
    if (rid != id) continue;
    if (name.find('@') != std::string::npos) r.repo_digests.push_back(name);
    else r.repo_tags.push_back(name);
  }
  if (auto meta = ReadJson(dir_ + "/images/" + id + "/meta.json"); meta && meta->is_object()) {
    r.size = meta->value("size", uint64_t{0});
  }
  if (auto cfg = base::ReadFile(dir_ + "/images/" + id + "/config.json")) {
    if (auto c = ParseImageConfig(*cfg)) r.config = *c;
  }
  return r;
}

std::optional<ImageRecord> ImageStore::LoadImageLocked(const std::string& id) const {
  if (id.empty() || !base::PathExists(dir_ + "/images/" + id + "/rootfs")) return std::nullopt;
  return RecordLocked(id);
}

std::string ImageStore::ResolveLocked(const std::string& ref) const {
  std::string id = ImageIdFromRef(ref);
  if (!id.empty()) return base::PathExists(dir_ + "/images/" + id + "/rootfs") ? id : "";
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
  DIR* d = opendir((dir_ + "/images").c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (IsSha256Hex(n) && base::PathExists(dir_ + "/images/" + n + "/rootfs")) {
      out.push_back(RecordLocked(n));
    }
  }
  closedir(d);
  return out;
}

Result<> ImageStore::Remove(const std::string& ref, const std::set<std::string>& in_use) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string id = ResolveLocked(ref);
  if (id.empty()) return {};
  if (in_use.count(id)) {
    return base::Fail("image \"" + ref + "\" (sha256:" + id + ") is in use by a container");
  }
  std::erase_if(refs_, [&](const auto& p) { return p.second == id; });
  CUBELET_TRY_CTX(SaveRefsLocked(), "remove image \"" + ref + "\"");
  // Rename first so that a half-removed image is never visible under its id.
  std::string trash = StagingDir() + "/removing-" + id;
  if (rename((dir_ + "/images/" + id).c_str(), trash.c_str()) != 0) {
    return base::Errno("remove image \"" + ref + "\"");
  }
  CUBELET_TRY_CTX(base::RemoveAll(trash), "remove image \"" + ref + "\"");
  return {};
}

Result<ImageRecord> ImageStore::Commit(const std::string& staged_rootfs,
                                       const std::string& config_json,
                                       const std::vector<std::string>& names, uint64_t size) {
  std::string id = Sha256Hex(config_json);
  std::string stage = staged_rootfs.substr(0, staged_rootfs.rfind('/'));
  std::lock_guard<std::mutex> lock(mu_);
  std::string final_dir = dir_ + "/images/" + id;
  if (!base::PathExists(final_dir + "/rootfs")) {
    CUBELET_TRY(base::WriteFileAtomic(stage + "/config.json", config_json));
    json meta = {{"size", size}};
    CUBELET_TRY(base::WriteFileAtomic(stage + "/meta.json", meta.dump()));
    if (staged_rootfs != stage + "/rootfs") {
      if (rename(staged_rootfs.c_str(), (stage + "/rootfs").c_str()) != 0) {
        return base::Errno("move unpacked rootfs");
      }
    }
    (void)base::RemoveAll(final_dir);
    if (rename(stage.c_str(), final_dir.c_str()) != 0) return base::Errno("store image " + id);
  } else {
    (void)base::RemoveAll(stage);
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
  if (!base::PathExists(dir_ + "/images/" + id + "/rootfs")) {
    return base::Fail("image sha256:" + id + " is not in the store");
  }
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
  std::string stage = StagingDir() + "/import-" + base::RandomAlnum(12);
  auto cleanup = [&] { (void)base::RemoveAll(stage); };
  auto copied = CopyTree(rootfs_dir, stage + "/rootfs");
  if (!copied) {
    cleanup();
    return tl::unexpected(copied.error().Wrap("import rootfs '" + rootfs_dir + "'"));
  }
  auto r = Commit(stage + "/rootfs", ImageConfigToJson(config), {ref->Tagged()},
                  DirSize(stage + "/rootfs"));
  if (!r) cleanup();
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

  std::string stage = StagingDir() + "/import-" + base::RandomAlnum(12);
  auto cleanup = base::Defer([&] { (void)base::RemoveAll(stage); });
  auto mk = base::MkdirAll(stage + "/rootfs");
  if (!mk) return fail(mk.error());
  uint64_t size = 0;
  for (const auto& layer : manifest.value("layers", json::array())) {
    std::string digest = layer.value("digest", "");
    std::string mt = layer.value("mediaType", "");
    if (mt.find("zstd") != std::string::npos) return fail({0, "zstd layers are not supported"});
    if (!base::StartsWith(digest, "sha256:")) return fail({0, "bad layer digest '" + digest + "'"});
    std::string path = BlobPath(layout, digest);
    base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail(base::Errno("open layer " + digest).value());
    TarReader tar(fd.get());
    auto stats = ApplyLayer(stage + "/rootfs", tar);
    if (!stats) return fail(stats.error().Wrap("layer " + digest));
    if (auto d = tar.Drain(); !d) return fail(d.error().Wrap("layer " + digest));
    if (tar.Sha256Hex() != digest.substr(7)) {
      return fail({0, "layer " + digest + " does not match its digest"});
    }
    size += stats->bytes;
  }
  std::vector<std::string> names{ref->Tagged(), ref->Repository() + "@" + manifest_digest};
  if (ref->tag.empty()) names.erase(names.begin());
  auto rec = Commit(stage + "/rootfs", *config, names, size);
  if (!rec) return fail(rec.error());
  return rec;
}

}  // namespace runtime
