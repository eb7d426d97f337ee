#include "runtime/registry_puller.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/file.h"
#include "base/log.h"
#include "base/scope_guard.h"
#include "base/strings.h"
#include "runtime/digest.h"
#include "runtime/http_client.h"
#include "runtime/image_ref.h"
#include "runtime/layer.h"
#include "runtime/tar_reader.h"

namespace runtime {

using nlohmann::json;

namespace {

const char* kAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string Base64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || base::StartsWith(host, "127.") || host == "[::1]" || host == "::1";
}

// WWW-Authenticate: Bearer realm="https://auth",service="registry",scope="repository:x:pull"
std::map<std::string, std::string> ParseChallenge(const std::string& h, std::string* scheme) {
  std::map<std::string, std::string> out;
  size_t sp = h.find(' ');
  *scheme = base::ToLower(h.substr(0, sp));
  std::string rest = sp == std::string::npos ? "" : h.substr(sp + 1);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == ',')) ++i;
    size_t eq = rest.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = base::ToLower(std::string(base::Trim(rest.substr(i, eq - i))));
    std::string val;
    i = eq + 1;
    if (i < rest.size() && rest[i] == '"') {
      size_t end = rest.find('"', i + 1);
      val = rest.substr(i + 1, end - i - 1);
      i = end == std::string::npos ? rest.size() : end + 1;
    } else {
      size_t end = rest.find(',', i);
      val = rest.substr(i, end - i);
      i = end == std::string::npos ? rest.size() : end;
    }
    out[key] = val;
  }
  return out;
}

class Registry {
 public:
  Registry(std::string base, const RegistryAuth& auth, bool insecure_tls)
      : base_(std::move(base)), auth_(auth), insecure_tls_(insecure_tls) {
    if (!auth.registry_token.empty()) authorization_ = "Bearer " + auth.registry_token;
  }

  // GET base + path, authenticating on a 401 challenge once.
  Result<HttpResponse> Get(const std::string& path, const std::string& accept, int body_fd) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      HttpRequest req;
      req.url = base_ + path;
      req.insecure_skip_verify = insecure_tls_;
      if (!accept.empty()) req.headers["Accept"] = accept;
      if (!authorization_.empty()) req.headers["Authorization"] = authorization_;
      req.body_fd = body_fd;
      auto resp = HttpGet(req);
      if (!resp) return resp;
      if (resp->status != 401 || attempt == 1) return resp;
      CUBELET_TRY(Authenticate(resp->Header("www-authenticate")));
    }
    return base::Fail("unreachable");
  }

 private:
  Result<> Authenticate(const std::string& challenge) {
    std::string scheme;
    auto params = ParseChallenge(challenge, &scheme);
    bool has_creds = !auth_.username.empty() || !auth_.password.empty();
    if (scheme == "basic") {
      if (!has_creds) return base::Fail("the registry requires credentials (basic auth)");
      authorization_ = "Basic " + Base64(auth_.username + ":" + auth_.password);
      return {};
    }
    if (scheme != "bearer" || params["realm"].empty()) {
      return base::Fail("unsupported registry authentication \"" + challenge + "\"");
    }
    std::string url = params["realm"] + "?service=" + base::PercentEncode(params["service"]);
    if (!params["scope"].empty()) url += "&scope=" + base::PercentEncode(params["scope"]);
    HttpRequest req;
    req.url = url;
    req.insecure_skip_verify = insecure_tls_;
    if (has_creds) req.headers["Authorization"] = "Basic " + Base64(auth_.username + ":" + auth_.password);
    auto resp = HttpGet(req);
    if (!resp) return tl::unexpected(resp.error().Wrap("get a registry token"));
    if (resp->status != 200) {
      return base::Fail("get a registry token: HTTP " + std::to_string(resp->status));
    }
    json j = json::parse(resp->body, nullptr, false);
    std::string token = j.is_object() ? j.value("token", j.value("access_token", "")) : "";
    if (token.empty()) return base::Fail("the registry token response has no token");
    authorization_ = "Bearer " + token;
    return {};
  }

  std::string base_;
  RegistryAuth auth_;
  bool insecure_tls_;
  std::string authorization_;
};

std::string HttpError(const HttpResponse& r) {
  std::string msg = "HTTP " + std::to_string(r.status);
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    msg += " " + j["errors"][0].value("code", "") + ": " + j["errors"][0].value("message", "");
  }
  return msg;
}

}  // namespace

namespace {

// One pull of `ref` from the registry endpoint `endpoint` ("scheme://host[:port]").
Result<PullResult> PullVia(ImageStore& store, const ImageRef& ref, const std::string& endpoint,
                           const RegistryAuth& auth) {
  std::string what = "pull " + ref.String();
  std::string base = endpoint + "/v2/" + ref.path + "/";
  Registry reg(base, auth, false);

  // Manifest (or index) by tag or digest.
  std::string reference = ref.digest.empty() ? ref.tag : ref.digest;
  auto resp = reg.Get("manifests/" + reference, kAccept, -1);
  if (!resp) return tl::unexpected(resp.error().Wrap(what));
  if (resp->status == 404) return base::Fail(what + ": manifest unknown (HTTP 404): not found");
  if (resp->status != 200) return base::Fail(what + ": manifest: " + HttpError(*resp));
  std::string manifest_digest = "sha256:" + Sha256Hex(resp->body);
  if (!ref.digest.empty() && manifest_digest != ref.digest) {
    return base::Fail(what + ": manifest digest " + manifest_digest + " does not match the reference");
  }
  json manifest = json::parse(resp->body, nullptr, false);
  if (!manifest.is_object()) return base::Fail(what + ": the manifest is not JSON");
  std::string resp_manifest_body = resp->body;  // the image (platform) manifest, stored below
  std::string mt = manifest.value("mediaType", resp->Header("content-type"));
  if (manifest.contains("manifests")) {  // an index / manifest list
    std::string chosen;
    for (const auto& m : manifest["manifests"]) {
      auto p = m.value("platform", json::object());
      if (p.value("os", "") == "linux" && p.value("architecture", "") == "amd64") {
        chosen = m.value("digest", "");
        break;
      }
    }
    if (chosen.empty()) return base::Fail(what + ": no linux/amd64 image in the index");
    resp = reg.Get("manifests/" + chosen, kAccept, -1);
    if (!resp) return tl::unexpected(resp.error().Wrap(what));
    if (resp->status != 200) return base::Fail(what + ": manifest " + chosen + ": " + HttpError(*resp));
    if ("sha256:" + Sha256Hex(resp->body) != chosen) {
      return base::Fail(what + ": manifest " + chosen + " does not match its digest");
    }
    manifest = json::parse(resp->body, nullptr, false);
    if (!manifest.is_object()) return base::Fail(what + ": the manifest is not JSON");
    resp_manifest_body = resp->body;
    // The repo digest kubelets report is the one of what the tag points to (the index).
  } else if (manifest.value("schemaVersion", 0) != 2) {
    return base::Fail(what + ": unsupported manifest (schema 1 or unknown media type " + mt + ")");
  }
  std::vector<std::string> names;
  if (!ref.tag.empty()) names.push_back(ref.Tagged());
  std::string repo_digest = ref.Repository() + "@" + manifest_digest;
  names.push_back(repo_digest);

  std::string config_digest = manifest["config"].value("digest", "");
  if (!IsSha256Digest(config_digest)) {
    return base::Fail(what + ": bad config digest \"" + config_digest + "\"");
  }
  // Already stored (same config = same image): only the names are new.
  if (store.Find(config_digest)) {
    auto rec = store.Tag(config_digest.substr(7), names);
    if (!rec) return tl::unexpected(rec.error().Wrap(what));
    return PullResult{*rec, repo_digest};
  }
  resp = reg.Get("blobs/" + config_digest, "", -1);
  if (!resp) return tl::unexpected(resp.error().Wrap(what));
  if (resp->status != 200) return base::Fail(what + ": config: " + HttpError(*resp));
  if ("sha256:" + Sha256Hex(resp->body) != config_digest) {
    return base::Fail(what + ": config blob " + config_digest + " does not match its digest");
  }
  std::string config = resp->body;
  if (auto c = ParseImageConfig(config); !c) return tl::unexpected(c.error().Wrap(what));
  auto diff_ids = ParseDiffIds(config);
  if (!diff_ids) return tl::unexpected(diff_ids.error().Wrap(what));
  const json layers = manifest.value("layers", json::array());
  if (layers.size() != diff_ids->size()) {
    return base::Fail(what + ": the manifest has " + std::to_string(layers.size()) +
                      " layers, the config " + std::to_string(diff_ids->size()) + " diff_ids");
  }

  // Layers the store has (by diff_id, from any image) are neither downloaded nor unpacked.
  ContentStore& content = store.content();
  auto lease = store.ContentLease();
  uint64_t size = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string digest = layers[i].value("digest", "");
    std::string lmt = layers[i].value("mediaType", "");
    if (lmt.find("zstd") != std::string::npos) return base::Fail(what + ": zstd layers are not supported");
    if (!IsSha256Digest(digest)) return base::Fail(what + ": bad layer digest \"" + digest + "\"");
    const std::string& diff_id = (*diff_ids)[i];
    if (auto have = content.Layer(diff_id)) {
      size += have->size;
      continue;
    }
    if (!content.HasBlob(digest)) {
      std::string file = content.StagingDir() + "/pull-" + base::RandomAlnum(12);
      auto cleanup = base::Defer([&] { unlink(file.c_str()); });
      {
        base::UniqueFd fd(open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd) return base::Errno(what + ": create " + file);
        resp = reg.Get("blobs/" + digest, "", fd.get());
        if (!resp) return tl::unexpected(resp.error().Wrap(what + ": layer " + digest));
        if (resp->status != 200) return base::Fail(what + ": layer " + digest + ": " + HttpError(*resp));
      }
      if (auto put = content.PutBlobFile(file, digest); !put) {
        return tl::unexpected(put.error().Wrap(what + ": layer " + digest));
      }
    }
    auto info = content.UnpackLayer(content.BlobPath(digest), digest, diff_id);
    if (!info) return tl::unexpected(info.error().Wrap(what));
    size += info->size;
  }
  const std::string& platform_manifest = resp_manifest_body;
  std::string platform_digest = "sha256:" + Sha256Hex(platform_manifest);
  if (auto put = content.PutBlob(platform_manifest, platform_digest); !put) {
    return tl::unexpected(put.error().Wrap(what));
  }
  auto rec = store.Commit(config, names, size, platform_digest);
  if (!rec) return tl::unexpected(rec.error().Wrap(what));
  lease.unlock();
  (void)store.GarbageCollect();  // what a removal skipped while this pull ran
  base::log::Info("image pulled", {{"image", ref.String()}, {"digest", manifest_digest}, {"size", size}});
  return PullResult{*rec, repo_digest};
}

}  // namespace

// As containerd's hosts: the configured mirror first, then, when it fails (unreachable, an
// error status, a digest that does not verify), the registry itself.
Result<PullResult> PullFromRegistry(ImageStore& store, const std::string& ref_text,
                                    const RegistryAuth& auth, const RegistryOptions& opts) {
  auto parsed = ParseImageRef(ref_text);
  if (!parsed) return tl::unexpected(parsed.error());
  const ImageRef& ref = *parsed;
  std::string host = ref.domain == "docker.io" ? "registry-1.docker.io" : ref.domain;
  std::string hostname =
      host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
  bool plain = IsLoopback(hostname) || opts.insecure_registries.count(ref.domain);
  std::string upstream = (plain ? "http://" : "https://") + host;
  auto m = opts.mirrors.find(ref.domain);
  if (m == opts.mirrors.end()) return PullVia(store, ref, upstream, auth);
  auto via_mirror = PullVia(store, ref, m->second, auth);
  if (via_mirror) return via_mirror;
  base::log::Warn("pull through the mirror failed; trying the registry itself",
                  {{"image", ref.String()}, {"mirror", m->second}, {"err", via_mirror.error().message}});
  auto direct = PullVia(store, ref, upstream, auth);
  if (direct) return direct;
  return base::Fail(direct.error().message + " (mirror " + m->second + ": " +
                        via_mirror.error().message + ")",
                    direct.error().code);
}

}  // namespace runtime
