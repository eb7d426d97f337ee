#pragma once
// Shared inputs of the node tests: real kube-apiserver captures (k8s-samples 10, 12, 20-23, 39)
// and a machine that matches sample 10's node.
#include <string>
#include <vector>

#include "agent/machine_info.h"
#include "agent/node_setters.h"
#include "base/time.h"
#include "cri/types.h"

namespace nodetest {

// k8s-samples/10-node-create.req.json (byte-exact request body).
inline const std::string kSample10Request =
    R"json({"kind":"Node","apiVersion":"v1","metadata":{"name":"sample-node","labels":{"beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"sample-node","kubernetes.io/os":"linux"},"annotations":{"volumes.kubernetes.io/controller-managed-attach-detach":"true"}},"spec":{},"status":{"capacity":{"cpu":"4","ephemeral-storage":"61202244Ki","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"16318064Ki","pods":"110"},"allocatable":{"cpu":"4","ephemeral-storage":"56403987978","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"16215664Ki","pods":"110"},"conditions":[{"type":"MemoryPressure","status":"False","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletHasSufficientMemory","message":"kubelet has sufficient memory available"},{"type":"DiskPressure","status":"False","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletHasNoDiskPressure","message":"kubelet has no disk pressure"},{"type":"PIDPressure","status":"False","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletHasSufficientPID","message":"kubelet has sufficient PID available"},{"type":"Ready","status":"True","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletReady","message":"kubelet is posting ready status"}],"addresses":[{"type":"InternalIP","address":"10.250.9.2"},{"type":"Hostname","address":"sample-node"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}},"nodeInfo":{"machineID":"5f3c0a0d1b2e4c6f8a9b0c1d2e3f4a5b","systemUUID":"4c4c4544-0042-3510-8052-b3c04f4e3332","bootID":"0b1a2c3d-4e5f-6071-8293-a4b5c6d7e8f9","kernelVersion":"6.1.0-18-amd64","osImage":"Debian GNU/Linux 12 (bookworm)","containerRuntimeVersion":"containerd://1.7.24","kubeletVersion":"v1.32.5","kubeProxyVersion":"v1.32.5","operatingSystem":"linux","architecture":"amd64"},"images":[{"names":["docker.io/library/busybox@sha256:2919d0172f7524b2d8df9e50066a682669e6d170ac0f6a49676d54358fe970b5","docker.io/library/busybox:latest"],"sizeBytes":2166802}]}})json";

// k8s-samples/10-node-create-201.http body: the node as the API server returned it.
inline const std::string kSample10Response =
    R"json({"kind":"Node","apiVersion":"v1","metadata":{"name":"sample-node","uid":"99e5d469-02c8-46ad-b2f9-0020faf99cda","resourceVersion":"31642","creationTimestamp":"2026-11-24T07:58:29Z","labels":{"beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"sample-node","kubernetes.io/os":"linux"},"annotations":{"volumes.kubernetes.io/controller-managed-attach-detach":"true"},"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-24T07:58:29Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:volumes.kubernetes.io/controller-managed-attach-detach":{}},"f:labels":{".":{},"f:beta.kubernetes.io/arch":{},"f:beta.kubernetes.io/os":{},"f:kubernetes.io/arch":{},"f:kubernetes.io/hostname":{},"f:kubernetes.io/os":{}}}}}]},"spec":{"taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule"}]},"status":{"capacity":{"cpu":"4","ephemeral-storage":"61202244Ki","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"16318064Ki","pods":"110"},"allocatable":{"cpu":"4","ephemeral-storage":"56403987978","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"16215664Ki","pods":"110"},"conditions":[{"type":"MemoryPressure","status":"False","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletHasSufficientMemory","message":"kubelet has sufficient memory available"},{"type":"DiskPressure","status":"False","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletHasNoDiskPressure","message":"kubelet has no disk pressure"},{"type":"PIDPressure","status":"False","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletHasSufficientPID","message":"kubelet has sufficient PID available"},{"type":"Ready","status":"True","lastHeartbeatTime":"2026-11-24T07:58:29Z","lastTransitionTime":"2026-11-24T07:58:29Z","reason":"KubeletReady","message":"kubelet is posting ready status"}],"addresses":[{"type":"InternalIP","address":"10.250.9.2"},{"type":"Hostname","address":"sample-node"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}},"nodeInfo":{"machineID":"5f3c0a0d1b2e4c6f8a9b0c1d2e3f4a5b","systemUUID":"4c4c4544-0042-3510-8052-b3c04f4e3332","bootID":"0b1a2c3d-4e5f-6071-8293-a4b5c6d7e8f9","kernelVersion":"6.1.0-18-amd64","osImage":"Debian GNU/Linux 12 (bookworm)","containerRuntimeVersion":"containerd://1.7.24","kubeletVersion":"v1.32.5","kubeProxyVersion":"v1.32.5","operatingSystem":"linux","architecture":"amd64"},"images":[{"names":["docker.io/library/busybox@sha256:2919d0172f7524b2d8df9e50066a682669e6d170ac0f6a49676d54358fe970b5","docker.io/library/busybox:latest"],"sizeBytes":2166802}]}})json";

// k8s-samples/12-node-status-smp.req.json: the kubelet's heartbeat patch 9 s later.
inline const std::string kSample12Patch =
    R"json({"status":{"$setElementOrder/conditions":[{"type":"MemoryPressure"},{"type":"DiskPressure"},{"type":"PIDPressure"},{"type":"Ready"}],"conditions":[{"lastHeartbeatTime":"2026-11-24T07:58:38Z","type":"MemoryPressure"},{"lastHeartbeatTime":"2026-11-24T07:58:38Z","type":"DiskPressure"},{"lastHeartbeatTime":"2026-11-24T07:58:38Z","type":"PIDPressure"},{"lastHeartbeatTime":"2026-11-24T07:58:38Z","type":"Ready"}]}})json";

inline std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// The sample with the strings that name the node software replaced by cubelet's.
inline std::string AsCubelet(std::string s) {
  s = ReplaceAll(s, "containerd://1.7.24", agent::ContainerRuntimeVersion());
  s = ReplaceAll(s, "\"v1.32.5\"", "\"" + agent::KubeletVersion() + "\"");
  s = ReplaceAll(s, "\"amd64\"", "\"" + agent::BinaryArch() + "\"");
  return s;
}

inline base::WallTime At(const char* rfc3339) { return *base::ParseRfc3339(rfc3339); }

inline agent::NodeStatusConfig SampleConfig() {
  agent::NodeStatusConfig c;
  c.node_name = "sample-node";
  c.node_ips = {"10.250.9.2"};
  return c;
}

inline agent::MachineInfo SampleMachine() {
  agent::MachineInfo m;
  m.cpu_cores = 4;
  m.memory_bytes = int64_t{16318064} * 1024;
  m.ephemeral_storage_bytes = int64_t{61202244} * 1024;
  m.hugepages = {{"hugepages-1Gi", 0}, {"hugepages-2Mi", 0}};
  m.machine_id = "5f3c0a0d1b2e4c6f8a9b0c1d2e3f4a5b";
  m.system_uuid = "4c4c4544-0042-3510-8052-b3c04f4e3332";
  m.boot_id = "0b1a2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
  m.kernel_version = "6.1.0-18-amd64";
  m.os_image = "Debian GNU/Linux 12 (bookworm)";
  return m;
}

inline cri::Image Busybox() {
  cri::Image img;
  img.id = "sha256:abc";
  img.repo_digests = {
      "docker.io/library/busybox@sha256:"
      "2919d0172f7524b2d8df9e50066a682669e6d170ac0f6a49676d54358fe970b5"};
  img.repo_tags = {"docker.io/library/busybox:latest"};
  img.size = 2166802;
  return img;
}

inline agent::NodeObservation SampleObservation(const char* now) {
  agent::NodeObservation o;
  o.now = At(now);
  o.machine = SampleMachine();
  o.usage.memory_available_bytes = int64_t{8} << 30;
  o.usage.fs_available_bytes = int64_t{30} << 30;
  o.usage.fs_capacity_bytes = int64_t{60} << 30;
  o.usage.pids_used = 300;
  o.usage.pid_max = 32768;
  o.images = std::vector<cri::Image>{Busybox()};
  return o;
}

// k8s-samples/20-lease-create.req.json: the Lease POST.
inline const std::string kSample20LeaseCreate =
    R"json({"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"sample-node","namespace":"kube-node-lease","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"sample-node","uid":"99e5d469-02c8-46ad-b2f9-0020faf99cda"}]},"spec":{"holderIdentity":"sample-node","leaseDurationSeconds":40,"renewTime":"2026-11-24T07:58:52.416453Z"}})json";

// k8s-samples/20-lease-create-201.http body.
inline const std::string kSample20LeaseCreated =
    R"json({"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"sample-node","namespace":"kube-node-lease","uid":"b1cbf158-ac17-4e79-ae43-5b63ec8ea2ba","resourceVersion":"31652","creationTimestamp":"2026-11-24T07:58:52Z","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"sample-node","uid":"99e5d469-02c8-46ad-b2f9-0020faf99cda"}],"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"coordination.k8s.io/v1","time":"2026-11-24T07:58:52Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:ownerReferences":{".":{},"k:{\"uid\":\"99e5d469-02c8-46ad-b2f9-0020faf99cda\"}":{}}},"f:spec":{"f:holderIdentity":{},"f:leaseDurationSeconds":{},"f:renewTime":{}}}}]},"spec":{"holderIdentity":"sample-node","leaseDurationSeconds":40,"renewTime":"2026-11-24T07:58:52.416453Z"}})json";

// k8s-samples/22-lease-put.req.json: the renewal PUT (no managedFields).
inline const std::string kSample22LeasePut =
    R"json({"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"sample-node","namespace":"kube-node-lease","uid":"b1cbf158-ac17-4e79-ae43-5b63ec8ea2ba","resourceVersion":"31652","creationTimestamp":"2026-11-24T07:58:52Z","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"sample-node","uid":"99e5d469-02c8-46ad-b2f9-0020faf99cda"}]},"spec":{"holderIdentity":"sample-node","leaseDurationSeconds":40,"renewTime":"2026-11-24T07:59:08.001804Z"}})json";

// k8s-samples/22-lease-put-200.http body.
inline const std::string kSample22LeasePutResponse =
    R"json({"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"sample-node","namespace":"kube-node-lease","uid":"b1cbf158-ac17-4e79-ae43-5b63ec8ea2ba","resourceVersion":"31656","creationTimestamp":"2026-11-24T07:58:52Z","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"sample-node","uid":"99e5d469-02c8-46ad-b2f9-0020faf99cda"}],"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"coordination.k8s.io/v1","time":"2026-11-24T07:59:08Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:ownerReferences":{".":{},"k:{\"uid\":\"99e5d469-02c8-46ad-b2f9-0020faf99cda\"}":{}}},"f:spec":{"f:holderIdentity":{},"f:leaseDurationSeconds":{},"f:renewTime":{}}}}]},"spec":{"holderIdentity":"sample-node","leaseDurationSeconds":40,"renewTime":"2026-11-24T07:59:08.001804Z"}})json";

// k8s-samples/23-lease-put-stale-rv-409.http body.
inline const std::string kSample23LeaseConflict =
    R"json({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on leases.coordination.k8s.io \"sample-node\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"sample-node","group":"coordination.k8s.io","kind":"leases"},"code":409})json";

// k8s-samples/39-node-create-event.req.json: a kubelet event.
inline const std::string kSample39EventCreate =
    R"json({"kind":"Event","apiVersion":"v1","metadata":{"name":"sample-pod.187b0a3f2c1d4e5a","namespace":"samples","creationTimestamp":null},"involvedObject":{"kind":"Pod","namespace":"samples","name":"sample-pod","uid":"7d18e496-7af9-4b13-819c-c342914d44a0","apiVersion":"v1","resourceVersion":"31675","fieldPath":"spec.containers{main}"},"reason":"Started","message":"Started container main","source":{"component":"kubelet","host":"sample-node"},"firstTimestamp":"2026-11-24T07:59:58Z","lastTimestamp":"2026-11-24T07:59:58Z","count":1,"type":"Normal","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"sample-node"})json";

}  // namespace nodetest
