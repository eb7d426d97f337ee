#pragma once
// The per-request REST handler of the test API server (internal to tests/apiserver). Its
// methods live in rest_read.cc (get/list/watch/log), rest_write.cc (create/update/patch/
// delete) and rest_auth.cc (TokenRequest, SelfSubjectReview).
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/apiserver/api_server.h"
#include "tests/apiserver/internal.h"
#include "tests/apiserver/selectors.h"

namespace apiserver {

struct ApiServer::Route {
  const internal::ResourceDef* def = nullptr;
  std::string ns;
  std::string name;
  std::string sub;
  std::string verb;
};

namespace rest {

Response JsonResponse(int status, const Json& body);
Response Created201();
Response NotFoundPath();
std::vector<std::string> SplitPath(const std::string& path);
bool IsTrue(const std::string& v);
bool StartsWith(const std::string& s, const std::string& p);
extern const std::set<std::string> kStatusTypes;
// Object as stored: Go struct order and kind/apiVersion first.
Json Canonical(const internal::ResourceDef& def, Json obj);
// Object as the client of `def` sees it (events.k8s.io reads core events).
Json ForClient(const internal::ResourceDef& def, const Json& stored);
Json StripTypeMeta(Json obj);
std::string MetaStr(const Json& obj, const char* key);
bool ParseInt(const std::string& s, int64_t* out);
struct Cidr {
  uint32_t base = 0;
  int bits = 32;
  uint32_t size() const { return bits == 0 ? 0xffffffffu : (1u << (32 - bits)); }
};
std::optional<Cidr> ParseCidr(const std::string& s);
std::string IpString(uint32_t ip);
std::optional<uint32_t> ParseIp(const std::string& s);
// The object without what every write changes (resourceVersion, managedFields).
Json WithoutVolatile(Json obj);
// Request bodies in JSON or YAML (as the real server accepts); protobuf is not supported here.
std::optional<Response> ParseBody(const Request& req, Json* body);

}  // namespace rest

class ApiServerImpl {
 public:
  ApiServerImpl(ApiServer& s, const Request& req, ApiServer::Route& route)
      : s_(s), store_(s.store_), req_(req), route_(route), def_(*route.def) {}

  Response Serve();

  // Bootstrap helpers (also used by the namespace create path).
  static void EnsureNamespaceDefaults(ApiServer& s, const std::string& ns);
  static std::string AllocateClusterIp(ApiServer& s, const std::string& requested,
                                       std::string* error);

 private:
  Response Get();
  Response List();
  Response Watch();
  Response Create();
  Response Update();
  Response Patch();
  Response Delete();
  Response DeleteCollection();
  Response TokenRequest(const Json& body);
  Response SelfSubjectReview();
  Response SubjectAccessReview(const Json& body);
  Response TokenReview(const Json& body);
  Response PodLog();
  Response PodExec();
  Response PodPortForward();
  // The kubelet URL base "https://IP:PORT" of the node running the pod, and the container
  // (defaulted when the pod has one), as the apiserver's streamLocation; or an error Response.
  // `container` == nullptr: no container is chosen (pods/portforward).
  std::optional<Response> KubeletLocation(std::string* base, std::string* container);
  Response Binding(const Json& body);
  bool WantsTable();
  Response TableResponse(const std::vector<Json>& objects, const std::string& rv);

  // Validates and stores `updated` as the new version of `old` (PUT and PATCH).
  Response CommitUpdate(const Json& old, Json updated, bool is_patch);
  Response DeleteObject(const Json& obj, const Json& options);
  bool Matches(const Json& obj, const LabelSelector& ls, const FieldSelector& fs);
  std::optional<Response> ParseSelectors(LabelSelector* ls, FieldSelector* fs);
  std::optional<Response> CheckNamespaceForCreate(const std::string& name);
  std::optional<Response> AdmitService(Json& svc, const Json* old);

  ApiServer& s_;
  Store& store_;
  const Request& req_;
  ApiServer::Route& route_;
  const internal::ResourceDef& def_;
};

}  // namespace apiserver
