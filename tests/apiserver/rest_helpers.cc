// Helpers shared by the REST handler files.
#include <arpa/inet.h>

#include "base/log.h"
#include "tests/apiserver/defaults.h"
#include "tests/apiserver/internal.h"
#include "tests/apiserver/patch.h"
#include "tests/apiserver/rest_handler.h"
#include "tests/apiserver/schema.h"
#include "tests/apiserver/selectors.h"
#include "tests/apiserver/table.h"
#include "tests/apiserver/util.h"
#include "tests/apiserver/yaml_json.h"

namespace apiserver::rest {

using namespace internal;

Response JsonResponse(int status, const Json& body) {
  Response r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

// Binding and Eviction answer {"status":"Success","code":201}.
Response Created201() {
  Json s = StatusBody(201, "", "", std::nullopt);
  s["code"] = 201;
  return JsonResponse(201, s);
}

Response NotFoundPath() {
  return StatusResponse(404, "NotFound", "the server could not find the requested resource",
                        Json::object());
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsTrue(const std::string& v) { return v == "true" || v == "1"; }

bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

const std::set<std::string> kStatusTypes = {"pods", "nodes", "services", "namespaces"};

// Object as stored: Go struct order and kind/apiVersion first.
Json Canonical(const ResourceDef& def, Json obj) {
  obj["kind"] = def.kind;
  obj["apiVersion"] = ApiVersionOf(def);
  const ResourceDef* storage_def = FindByStorage(def.storage);
  return schema::Normalize(obj, storage_def ? storage_def->go_type : def.go_type);
}

// Object as the client of `def` sees it (events.k8s.io reads core events).
Json ForClient(const ResourceDef& def, const Json& stored) {
  if (def.group == "events.k8s.io") return CoreEventToV1(stored);
  return stored;
}

Json StripTypeMeta(Json obj) {
  obj.erase("kind");
  obj.erase("apiVersion");
  return obj;
}

std::string MetaStr(const Json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  const Json& m = obj["metadata"];
  auto it = m.find(key);
  if (it == m.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  long long v = strtoll(s.c_str(), &end, 10);
  if (*end != '\0') return false;
  *out = v;
  return true;
}

// IPv4 helpers for service and pod CIDR allocation.

std::optional<Cidr> ParseCidr(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  in_addr a{};
  if (inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1) return std::nullopt;
  Cidr c;
  c.bits = std::stoi(s.substr(slash + 1));
  c.base = ntohl(a.s_addr);
  if (c.bits < 32) c.base &= ~(c.size() - 1);
  return c;
}

std::string IpString(uint32_t ip) {
  in_addr a{};
  a.s_addr = htonl(ip);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

std::optional<uint32_t> ParseIp(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

Json WithoutVolatile(Json obj) {
  if (obj.contains("metadata")) {
    obj["metadata"].erase("resourceVersion");
    obj["metadata"].erase("managedFields");
  }
  return obj;
}

// Request bodies in JSON or YAML (as the real server accepts); protobuf is not supported here.
std::optional<Response> ParseBody(const Request& req, Json* body) {
  std::string ct = req.Header("content-type");
  std::string err;
  if (ct.find("protobuf") != std::string::npos || ct.find("cbor") != std::string::npos)
    return StatusResponse(415, "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media "
                          "types include: application/json, application/yaml",
                          Json::object());
  if (ct.rfind("application/yaml", 0) == 0) {
    if (!YamlToJson(req.body, body, &err)) return BadRequest(err);
    return std::nullopt;
  }
  if (!ParseJson(req.body, body, &err)) return BadRequest(err);
  return std::nullopt;
}

}  // namespace apiserver::rest
