#include "tests/apiserver/schema.h"

#include <map>
#include <mutex>
#include <sstream>
#include <vector>

namespace apiserver::schema {
namespace {

// Field notation: "name:TYPE" has omitempty, "name=TYPE" does not. "...Type" inlines a struct.
// TYPE: s string, i integer, f number, b bool, q quantity, ios IntOrString, T metav1.Time (a
// struct: null when unset), any (kept as sent), *X pointer (omitted when unset, even without
// omitempty it is null), []X list, {}X map with sorted keys, Name a struct from this table.
// A list type may end in "@key" (patchStrategy merge, patchMergeKey key), "@" (merge of
// primitives) or "@key+" (merge,retainKeys).
struct TypeDef {
  const char* name;
  const char* fields;
};

const TypeDef kTypes[] = {
    // --- meta/v1
    {"TypeMeta", "kind:s apiVersion:s"},
    {"ObjectMeta",
     "name:s generateName:s namespace:s selfLink:s uid:s resourceVersion:s generation:i "
     "creationTimestamp:T deletionTimestamp:*T deletionGracePeriodSeconds:*i labels:{}s "
     "annotations:{}s ownerReferences:[]OwnerReference@uid finalizers:[]s@ managedFields:[]any"},
    {"OwnerReference",
     "apiVersion=s kind=s name=s uid=s controller:*b blockOwnerDeletion:*b"},
    {"ListMeta", "selfLink:s resourceVersion:s continue:s remainingItemCount:*i"},
    {"Status",
     "...TypeMeta metadata:ListMeta status:s message:s reason:s details:*StatusDetails code:i"},
    {"StatusDetails", "name:s group:s kind:s uid:s causes:[]StatusCause retryAfterSeconds:i"},
    {"StatusCause", "reason:s message:s field:s"},
    {"ObjectReference",
     "kind:s namespace:s name:s uid:s apiVersion:s resourceVersion:s fieldPath:s"},
    {"LocalObjectReference", "name:s"},
    {"LabelSelector", "matchLabels:{}s matchExpressions:[]any"},
    // --- core/v1 Pod
    {"Pod", "...TypeMeta metadata:ObjectMeta spec:PodSpec status:PodStatus"},
    {"PodSpec",
     "volumes:[]Volume@name+ initContainers:[]Container@name containers=[]Container@name "
     "ephemeralContainers:[]any@name restartPolicy:s terminationGracePeriodSeconds:*i "
     "activeDeadlineSeconds:*i dnsPolicy:s nodeSelector:{}s serviceAccountName:s "
     "serviceAccount:s automountServiceAccountToken:*b nodeName:s hostNetwork:b hostPID:b "
     "hostIPC:b shareProcessNamespace:*b securityContext:*any "
     "imagePullSecrets:[]LocalObjectReference@name hostname:s subdomain:s affinity:*any "
     "schedulerName:s tolerations:[]Toleration hostAliases:[]any@ip priorityClassName:s "
     "priority:*i dnsConfig:*any readinessGates:[]any runtimeClassName:*s "
     "enableServiceLinks:*b preemptionPolicy:*s overhead:{}q "
     "topologySpreadConstraints:[]any@topologyKey setHostnameAsFQDN:*b os:*any hostUsers:*b "
     "schedulingGates:[]any@name resourceClaims:[]any@name+ resources:*any"},
    {"Container",
     "name=s image:s command:[]s args:[]s workingDir:s ports:[]ContainerPort@containerPort "
     "envFrom:[]any env:[]EnvVar@name resources:ResourceRequirements resizePolicy:[]any "
     "restartPolicy:*s volumeMounts:[]VolumeMount@mountPath volumeDevices:[]any@devicePath "
     "livenessProbe:*Probe readinessProbe:*Probe startupProbe:*Probe lifecycle:*Lifecycle "
     "terminationMessagePath:s terminationMessagePolicy:s imagePullPolicy:s "
     "securityContext:*any stdin:b stdinOnce:b tty:b"},
    {"ContainerPort", "name:s hostPort:i containerPort=i protocol:s hostIP:s"},
    {"EnvVar", "name=s value:s valueFrom:*any"},
    {"ResourceRequirements", "limits:{}q requests:{}q claims:[]any"},
    {"VolumeMount",
     "name=s readOnly:b recursiveReadOnly:*s mountPath=s subPath:s mountPropagation:*s "
     "subPathExpr:s"},
    {"Probe",
     "...ProbeHandler initialDelaySeconds:i timeoutSeconds:i periodSeconds:i "
     "successThreshold:i failureThreshold:i terminationGracePeriodSeconds:*i"},
    {"ProbeHandler", "exec:*ExecAction httpGet:*HTTPGetAction tcpSocket:*TCPSocketAction grpc:*GRPCAction"},
    {"LifecycleHandler",
     "exec:*ExecAction httpGet:*HTTPGetAction tcpSocket:*TCPSocketAction sleep:*any"},
    {"Lifecycle", "postStart:*LifecycleHandler preStop:*LifecycleHandler stopSignal:*s"},
    {"ExecAction", "command:[]s"},
    {"HTTPGetAction", "path:s port=ios host:s scheme:s httpHeaders:[]any"},
    {"TCPSocketAction", "port=ios host:s"},
    {"GRPCAction", "port=i service=*s"},
    {"Toleration", "key:s operator:s value:s effect:s tolerationSeconds:*i"},
    {"Volume",
     "name=s hostPath:*HostPathVolumeSource emptyDir:*EmptyDirVolumeSource "
     "gcePersistentDisk:*any awsElasticBlockStore:*any gitRepo:*any "
     "secret:*SecretVolumeSource nfs:*any iscsi:*any glusterfs:*any "
     "persistentVolumeClaim:*PersistentVolumeClaimVolumeSource rbd:*any flexVolume:*any "
     "cinder:*any cephfs:*any flocker:*any downwardAPI:*DownwardAPIVolumeSource fc:*any "
     "azureFile:*any configMap:*ConfigMapVolumeSource vsphereVolume:*any quobyte:*any "
     "azureDisk:*any photonPersistentDisk:*any projected:*ProjectedVolumeSource "
     "portworxVolume:*any scaleIO:*any storageos:*any csi:*any ephemeral:*any image:*any"},
    {"HostPathVolumeSource", "path=s type:*s"},
    {"EmptyDirVolumeSource", "medium:s sizeLimit:*q"},
    {"SecretVolumeSource", "secretName:s items:[]KeyToPath defaultMode:*i optional:*b"},
    {"ConfigMapVolumeSource", "name:s items:[]KeyToPath defaultMode:*i optional:*b"},
    {"PersistentVolumeClaimVolumeSource", "claimName=s readOnly:b"},
    {"DownwardAPIVolumeSource", "items:[]DownwardAPIVolumeFile defaultMode:*i"},
    {"ProjectedVolumeSource", "sources=[]VolumeProjection defaultMode:*i"},
    {"VolumeProjection",
     "secret:*SecretProjection downwardAPI:*DownwardAPIProjection "
     "configMap:*ConfigMapProjection serviceAccountToken:*ServiceAccountTokenProjection "
     "clusterTrustBundle:*any"},
    {"SecretProjection", "name:s items:[]KeyToPath optional:*b"},
    {"ConfigMapProjection", "name:s items:[]KeyToPath optional:*b"},
    {"ServiceAccountTokenProjection", "audience:s expirationSeconds:*i path=s"},
    {"DownwardAPIProjection", "items:[]DownwardAPIVolumeFile"},
    {"DownwardAPIVolumeFile",
     "path=s fieldRef:*ObjectFieldSelector resourceFieldRef:*any mode:*i"},
    {"ObjectFieldSelector", "apiVersion:s fieldPath=s"},
    {"KeyToPath", "key=s path=s mode:*i"},
    {"PodStatus",
     "phase:s conditions:[]PodCondition@type message:s reason:s nominatedNodeName:s "
     "hostIP:s hostIPs:[]HostIP@ip podIP:s podIPs:[]PodIP@ip startTime:*T "
     "initContainerStatuses:[]ContainerStatus containerStatuses:[]ContainerStatus qosClass:s "
     "ephemeralContainerStatuses:[]ContainerStatus resize:s resourceClaimStatuses:[]any@name"},
    {"PodCondition",
     "type=s status=s lastProbeTime:T lastTransitionTime:T reason:s message:s"},
    {"PodIP", "ip=s"},
    {"HostIP", "ip=s"},
    {"ContainerStatus",
     "name=s state:ContainerState lastState:ContainerState ready=b restartCount=i image=s "
     "imageID=s containerID:s started:*b allocatedResources:{}q resources:*any "
     "volumeMounts:[]VolumeMountStatus@mountPath user:*any allocatedResourcesStatus:[]any@name"},
    {"ContainerState",
     "waiting:*ContainerStateWaiting running:*ContainerStateRunning "
     "terminated:*ContainerStateTerminated"},
    {"ContainerStateWaiting", "reason:s message:s"},
    {"ContainerStateRunning", "startedAt:T"},
    {"ContainerStateTerminated",
     "exitCode=i signal:i reason:s message:s startedAt:T finishedAt:T containerID:s"},
    {"VolumeMountStatus", "name=s mountPath=s readOnly:b recursiveReadOnly:*s"},
    {"PodList", "...TypeMeta metadata:ListMeta items=[]Pod"},
    // --- Node
    {"Node", "...TypeMeta metadata:ObjectMeta spec:NodeSpec status:NodeStatus"},
    {"NodeSpec",
     "podCIDR:s podCIDRs:[]s@ providerID:s unschedulable:b taints:[]Taint configSource:*any "
     "externalID:s"},
    {"Taint", "key=s value:s effect=s timeAdded:*T"},
    {"NodeStatus",
     "capacity:{}q allocatable:{}q phase:s conditions:[]NodeCondition@type "
     "addresses:[]NodeAddress@type daemonEndpoints:NodeDaemonEndpoints nodeInfo:NodeSystemInfo "
     "images:[]ContainerImage volumesInUse:[]s volumesAttached:[]any config:*any "
     "runtimeHandlers:[]any features:*any"},
    {"NodeCondition",
     "type=s status=s lastHeartbeatTime:T lastTransitionTime:T reason:s message:s"},
    {"NodeAddress", "type=s address=s"},
    {"NodeDaemonEndpoints", "kubeletEndpoint:DaemonEndpoint"},
    {"DaemonEndpoint", "Port=i"},
    {"NodeSystemInfo",
     "machineID=s systemUUID=s bootID=s kernelVersion=s osImage=s containerRuntimeVersion=s "
     "kubeletVersion=s kubeProxyVersion=s operatingSystem=s architecture=s swap:*any"},
    {"ContainerImage", "names:[]s sizeBytes:i"},
    // --- Service / Endpoints
    {"Service", "...TypeMeta metadata:ObjectMeta spec:ServiceSpec status:ServiceStatus"},
    {"ServiceSpec",
     "ports:[]ServicePort@port selector:{}s clusterIP:s clusterIPs:[]s type:s "
     "externalIPs:[]s sessionAffinity:s loadBalancerIP:s loadBalancerSourceRanges:[]s "
     "externalName:s externalTrafficPolicy:s healthCheckNodePort:i "
     "publishNotReadyAddresses:b sessionAffinityConfig:*any ipFamilies:[]s "
     "ipFamilyPolicy:*s allocateLoadBalancerNodePorts:*b loadBalancerClass:*s "
     "internalTrafficPolicy:*s trafficDistribution:*s"},
    {"ServicePort", "name:s protocol:s appProtocol:*s port=i targetPort:ios nodePort:i"},
    {"ServiceStatus", "loadBalancer:LoadBalancerStatus conditions:[]any@type"},
    {"LoadBalancerStatus", "ingress:[]any"},
    {"Endpoints", "...TypeMeta metadata:ObjectMeta subsets:[]EndpointSubset"},
    {"EndpointSubset",
     "addresses:[]EndpointAddress notReadyAddresses:[]EndpointAddress ports:[]CoreEndpointPort"},
    {"EndpointAddress", "ip=s hostname:s nodeName:*s targetRef:*ObjectReference"},
    {"CoreEndpointPort", "name:s port=i protocol:s appProtocol:*s"},
    {"EndpointSlice",
     "...TypeMeta metadata:ObjectMeta addressType=s endpoints=[]Endpoint ports=[]EndpointPort"},
    {"Endpoint",
     "addresses=[]s conditions:EndpointConditions hostname:*s targetRef:*ObjectReference "
     "deprecatedTopology:{}s nodeName:*s zone:*s hints:*any"},
    {"EndpointConditions", "ready:*b serving:*b terminating:*b"},
    {"EndpointPort", "name:*s protocol:*s port:*i appProtocol:*s"},
    // --- coordination.k8s.io
    {"Lease", "...TypeMeta metadata:ObjectMeta spec:LeaseSpec"},
    {"LeaseSpec",
     "holderIdentity:*s leaseDurationSeconds:*i acquireTime:*T renewTime:*T "
     "leaseTransitions:*i strategy:*s preferredHolder:*s"},
    // --- events
    {"Event",
     "...TypeMeta metadata=ObjectMeta involvedObject=ObjectReference reason:s message:s "
     "source:EventSource firstTimestamp:T lastTimestamp:T count:i type:s eventTime:T "
     "series:*any action:s related:*ObjectReference reportingComponent=s reportingInstance=s"},
    {"EventSource", "component:s host:s"},
    {"EventsV1Event",
     "...TypeMeta metadata:ObjectMeta eventTime=T series:*any reportingController:s "
     "reportingInstance:s action:s reason:s regarding:ObjectReference related:*ObjectReference "
     "note:s type:s deprecatedSource:EventSource deprecatedFirstTimestamp:T "
     "deprecatedLastTimestamp:T deprecatedCount:i"},
    // --- config
    {"ConfigMap", "...TypeMeta metadata:ObjectMeta immutable:*b data:{}s binaryData:{}s"},
    {"Secret",
     "...TypeMeta metadata:ObjectMeta immutable:*b data:{}s stringData:{}s type:s"},
    {"ServiceAccount",
     "...TypeMeta metadata:ObjectMeta secrets:[]ObjectReference@name "
     "imagePullSecrets:[]LocalObjectReference automountServiceAccountToken:*b"},
    {"Namespace", "...TypeMeta metadata:ObjectMeta spec:NamespaceSpec status:NamespaceStatus"},
    {"NamespaceSpec", "finalizers:[]s"},
    {"NamespaceStatus", "phase:s conditions:[]any@type"},
    // --- authentication.k8s.io
    {"TokenRequest",
     "...TypeMeta metadata:ObjectMeta spec=TokenRequestSpec status:TokenRequestStatus"},
    {"TokenRequestSpec",
     "audiences=[]s expirationSeconds:*i boundObjectRef:*BoundObjectReference"},
    {"BoundObjectReference", "kind:s apiVersion:s name:s uid:s"},
    {"TokenRequestStatus", "token=s expirationTimestamp=T"},
    {"SelfSubjectReview", "...TypeMeta metadata:ObjectMeta status:SelfSubjectReviewStatus"},
    {"SelfSubjectReviewStatus", "userInfo:UserInfo"},
    {"UserInfo", "username:s uid:s groups:[]s extra:{}any"},
};

enum class Kind { kString, kInt, kFloat, kBool, kQuantity, kIntOrString, kTime, kAny, kStruct,
                  kList, kMap };

struct TypeRef {
  Kind kind = Kind::kAny;
  bool pointer = false;
  std::string struct_name;        // kStruct
  std::shared_ptr<TypeRef> elem;  // kList, kMap
};

struct FieldDef {
  std::string name;
  bool omitempty = true;
  TypeRef type;
  PatchMeta meta;
};

struct StructDef {
  std::vector<FieldDef> fields;
};

TypeRef ParseType(std::string_view t) {
  TypeRef r;
  if (t.substr(0, 1) == "*") {
    r = ParseType(t.substr(1));
    r.pointer = true;
    return r;
  }
  if (t.substr(0, 2) == "[]") {
    r.kind = Kind::kList;
    r.elem = std::make_shared<TypeRef>(ParseType(t.substr(2)));
    return r;
  }
  if (t.substr(0, 2) == "{}") {
    r.kind = Kind::kMap;
    r.elem = std::make_shared<TypeRef>(ParseType(t.substr(2)));
    return r;
  }
  if (t == "s") r.kind = Kind::kString;
  else if (t == "i") r.kind = Kind::kInt;
  else if (t == "f") r.kind = Kind::kFloat;
  else if (t == "b") r.kind = Kind::kBool;
  else if (t == "q") r.kind = Kind::kQuantity;
  else if (t == "ios") r.kind = Kind::kIntOrString;
  else if (t == "T") r.kind = Kind::kTime;
  else if (t == "any") r.kind = Kind::kAny;
  else {
    r.kind = Kind::kStruct;
    r.struct_name = std::string(t);
  }
  return r;
}

const std::map<std::string, StructDef, std::less<>>& Types() {
  static const auto* types = [] {
    auto* m = new std::map<std::string, StructDef, std::less<>>;
    std::map<std::string, std::string> raw;
    for (const auto& t : kTypes) raw[t.name] = t.fields;
    // Expands "...Inline" recursively.
    std::function<void(const std::string&, StructDef&)> add = [&](const std::string& spec,
                                                                   StructDef& def) {
      std::istringstream in(spec);
      std::string tok;
      while (in >> tok) {
        if (tok.rfind("...", 0) == 0) {
          add(raw.at(tok.substr(3)), def);
          continue;
        }
        FieldDef f;
        size_t sep = tok.find_first_of(":=");
        f.name = tok.substr(0, sep);
        f.omitempty = tok[sep] == ':';
        std::string type = tok.substr(sep + 1);
        size_t at = type.find('@');
        if (at != std::string::npos) {
          std::string key = type.substr(at + 1);
          type = type.substr(0, at);
          f.meta.merge = true;
          if (!key.empty() && key.back() == '+') {
            f.meta.retain_keys = true;
            key.pop_back();
          }
          f.meta.merge_key = key;
        }
        f.type = ParseType(type);
        if (f.type.kind == Kind::kStruct) f.meta.type = f.type.struct_name;
        if ((f.type.kind == Kind::kList || f.type.kind == Kind::kMap) &&
            f.type.elem->kind == Kind::kStruct)
          f.meta.elem_type = f.type.elem->struct_name;
        def.fields.push_back(std::move(f));
      }
    };
    for (const auto& [name, spec] : raw) add(spec, (*m)[name]);
    return m;
  }();
  return *types;
}

bool IsEmptyValue(const Json& v) {
  if (v.is_null()) return true;
  if (v.is_string()) return v.get_ref<const std::string&>().empty();
  if (v.is_boolean()) return !v.get<bool>();
  if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>() == 0;
  if (v.is_number_float()) return v.get<double>() == 0;
  if (v.is_array() || v.is_object()) return v.empty();
  return false;
}

Json ZeroValue(const TypeRef& t);
Json NormalizeStruct(const Json& in, const std::string& name);

// Returns nullopt when the field is to be left out.
std::optional<Json> NormalizeValue(const Json* in, const TypeRef& t, bool omitempty) {
  bool absent = in == nullptr || in->is_null();
  if (t.pointer) {
    if (absent) {
      if (omitempty) return std::nullopt;
      return Json(nullptr);
    }
    TypeRef inner = t;
    inner.pointer = false;
    // A set pointer is emitted even when it points at an empty value.
    return NormalizeValue(in, inner, false);
  }
  switch (t.kind) {
    case Kind::kStruct: {
      static const Json kEmpty = Json::object();
      return NormalizeStruct(absent ? kEmpty : *in, t.struct_name);
    }
    case Kind::kTime:
      if (absent || (in->is_string() && in->get_ref<const std::string&>().empty()))
        return Json(nullptr);
      return *in;
    case Kind::kList: {
      if (absent) {
        if (omitempty) return std::nullopt;
        return Json(nullptr);
      }
      if (!in->is_array()) return *in;
      if (in->empty() && omitempty) return std::nullopt;
      Json out = Json::array();
      for (const auto& e : *in) {
        auto v = NormalizeValue(&e, *t.elem, false);
        out.push_back(v ? *v : Json(nullptr));
      }
      return out;
    }
    case Kind::kMap: {
      if (absent) {
        if (omitempty) return std::nullopt;
        return Json(nullptr);
      }
      if (!in->is_object()) return *in;
      if (in->empty() && omitempty) return std::nullopt;
      std::map<std::string, Json> sorted;
      for (const auto& [k, v] : in->items()) {
        auto nv = NormalizeValue(&v, *t.elem, false);
        sorted[k] = nv ? *nv : Json(nullptr);
      }
      Json out = Json::object();
      for (auto& [k, v] : sorted) out[k] = std::move(v);
      return out;
    }
    case Kind::kAny:
      if (absent) {
        if (omitempty) return std::nullopt;
        return Json(nullptr);
      }
      if (omitempty && IsEmptyValue(*in) && !in->is_object()) return std::nullopt;
      return *in;
    case Kind::kIntOrString:
      // intstr.IntOrString is a struct: omitempty never drops it; its zero value is 0.
      if (absent) return Json(0);
      return *in;
    case Kind::kQuantity:
      if (absent) return omitempty ? std::nullopt : std::optional<Json>(Json("0"));
      if (in->is_number()) {
        // Quantities sent as numbers are canonicalised to strings.
        if (in->is_number_float()) {
          std::ostringstream o;
          o << in->get<double>();
          return Json(o.str());
        }
        return Json(std::to_string(in->get<int64_t>()));
      }
      return *in;
    default:
      if (absent) {
        if (omitempty) return std::nullopt;
        return ZeroValue(t);
      }
      if (omitempty && IsEmptyValue(*in)) return std::nullopt;
      return *in;
  }
}

Json ZeroValue(const TypeRef& t) {
  switch (t.kind) {
    case Kind::kString: return Json("");
    case Kind::kInt: return Json(0);
    case Kind::kFloat: return Json(0);
    case Kind::kBool: return Json(false);
    default: return Json(nullptr);
  }
}

Json NormalizeStruct(const Json& in, const std::string& name) {
  const auto& types = Types();
  auto it = types.find(name);
  if (it == types.end() || !in.is_object()) return in;
  Json out = Json::object();
  for (const auto& f : it->second.fields) {
    auto fit = in.find(f.name);
    const Json* v = fit == in.end() ? nullptr : &*fit;
    auto nv = NormalizeValue(v, f.type, f.omitempty);
    if (nv) out[f.name] = std::move(*nv);
  }
  // Fields the Go struct does not have are dropped, as decoding into the struct does (the
  // real server answers with a "unknown field" warning unless fieldValidation=Strict).
  return out;
}

}  // namespace

Json Normalize(const Json& in, std::string_view type) {
  return NormalizeStruct(in, std::string(type));
}

std::optional<PatchMeta> FieldMeta(std::string_view type, std::string_view field) {
  const auto& types = Types();
  auto it = types.find(type);
  if (it == types.end()) return std::nullopt;
  for (const auto& f : it->second.fields) {
    if (f.name == field) return f.meta;
  }
  return std::nullopt;
}

bool HasType(std::string_view type) { return Types().count(type) > 0; }

}  // namespace apiserver::schema
