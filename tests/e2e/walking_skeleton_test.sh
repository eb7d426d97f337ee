#!/usr/bin/env bash
# End to end, as an operator sees it: a cubelet node joins the test control plane, runs real
# busybox pods (cgroups, namespaces, pod network), reports their status, restarts a crashing
# container, serves logs through `kubectl logs`, proxies a ClusterIP service over two pods, and
# leaves nothing behind when the pods are deleted.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

# The control plane is down when the node starts: cubelet must retry with back-off and say why.
start_apiserver --node node-a || exit 1
kill "$API_PID"; wait "$API_PID" 2>/dev/null
start_node 1 node-a
wait_for 15 "unreachable API server is retried and logged" bash -c "grep -c 'Connection refused' $TMP/node-a/cubelet.log | awk '{exit !(\$1 >= 3)}'"
wait_for 10 "registration retries back off (100 ms doubling)" grep -q 'retry_in_ms=800' "$TMP/node-a/cubelet.log"
start_apiserver --node node-a || exit 1

# --- the node joins and stays Ready --------------------------------------------------------
wait_for 30 "node-a registered and Ready" node_ready
check "Ready reason KubeletReady" test "$(k get node node-a -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')" = KubeletReady
check "node InternalIP is the node's address" test "$(k get node node-a -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')" = 10.123.0.11
check "node labels hostname/os/arch" test "$(k get node node-a -o jsonpath='{.metadata.labels.kubernetes\.io/hostname}/{.metadata.labels.kubernetes\.io/os}/{.metadata.labels.kubernetes\.io/arch}')" = node-a/linux/amd64
check "capacity has cpu, memory, pods" test -n "$(k get node node-a -o jsonpath='{.status.capacity.cpu}{.status.capacity.memory}{.status.capacity.pods}')"
check "kubelet endpoint port 10250" test "$(k get node node-a -o jsonpath='{.status.daemonEndpoints.kubeletEndpoint.Port}')" = 10250
lease_renew() { k -n kube-node-lease get lease node-a -o jsonpath='{.spec.renewTime}'; }
wait_for 20 "lease exists" lease_renew
r1=$(lease_renew)
check "lease holder and duration" test "$(k -n kube-node-lease get lease node-a -o jsonpath='{.spec.holderIdentity}/{.spec.leaseDurationSeconds}')" = node-a/40
check "lease owned by the Node" test "$(k -n kube-node-lease get lease node-a -o jsonpath='{.metadata.ownerReferences[0].kind}')" = Node
wait_for 25 "lease renewed (every 10 s)" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG -n kube-node-lease get lease node-a -o jsonpath='{.spec.renewTime}')\" != '$r1' ]"
POD_CIDR=$(k get node node-a -o jsonpath='{.spec.podCIDR}')
check "node got a pod CIDR" test -n "$POD_CIDR"

# --- two web pods and a ClusterIP service ---------------------------------------------------
for n in 1 2; do
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: web-$n, namespace: default, labels: {app: web}}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 5
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from \$(hostname) > /www/index.html; echo serving; exec httpd -f -v -p 8080 -h /www"]
    ports: [{containerPort: 8080, name: http}]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 200m, memory: 64Mi}
YAML
done
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
YAML
phase() { k get pod "$1" -o jsonpath='{.status.phase}'; }
wait_for 60 "web-1 Running" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-1 -o jsonpath='{.status.phase}')\" = Running ]"
wait_for 60 "web-2 Running" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-2 -o jsonpath='{.status.phase}')\" = Running ]"
k get pod web-1 -o json > "$TMP/web-1.json"
jqc() { jq -e "$1" "$TMP/web-1.json" >/dev/null; }
check "podIP set" jqc '.status.podIP | test("^10\\.244\\.")'
check "hostIP is the node IP" jqc '.status.hostIP == "10.123.0.11"'
check "startTime set" jqc '.status.startTime | length > 0'
check "qosClass Burstable" jqc '.status.qosClass == "Burstable"'
check "conditions Ready True" jqc '[.status.conditions[] | select(.type=="Ready")][0].status == "True"'
check "container running, restartCount 0" jqc '.status.containerStatuses[0].state.running.startedAt and .status.containerStatuses[0].restartCount == 0'
check "containerID cubelet://" jqc '.status.containerStatuses[0].containerID | startswith("cubelet://")'
check "ready and started" jqc '.status.containerStatuses[0].ready and .status.containerStatuses[0].started'
UID1=$(jq -r .metadata.uid "$TMP/web-1.json")
IP1=$(jq -r .status.podIP "$TMP/web-1.json")

# The pod really runs: cgroup with the limits, processes in it, own namespaces, pod network.
CG=$CGROUP_ROOT/node-a/kubepods/burstable/pod$UID1
check "pod memory cgroup has the limit (64Mi)" test "$(cat /sys/fs/cgroup/memory/$CG/memory.limit_in_bytes 2>/dev/null)" = 67108864
check "pod cpu quota 20000/100000" test "$(cat /sys/fs/cgroup/cpu/$CG/cpu.cfs_quota_us 2>/dev/null)" = 20000
PROCS=$(find /sys/fs/cgroup/memory/$CG -name cgroup.procs -exec cat {} + 2>/dev/null | head -1)
check "a process runs in the pod cgroup" test -n "$PROCS"
if [ -n "$PROCS" ]; then
  check "it is httpd" grep -q httpd /proc/$PROCS/cmdline
  check "own pid namespace" test "$(readlink /proc/$PROCS/ns/pid)" != "$(readlink /proc/self/ns/pid)"
  check "own mount namespace" test "$(readlink /proc/$PROCS/ns/mnt)" != "$(readlink /proc/self/ns/mnt)"
  check "own net namespace (not the node's)" test "$(readlink /proc/$PROCS/ns/net)" != "$(in_node 1 readlink /proc/self/ns/net)"
  check "hostname is the pod name" test "$(nsenter -t $PROCS -u hostname)" = web-1
  check "service account token mounted" test -s /proc/$PROCS/root/var/run/secrets/kubernetes.io/serviceaccount/token
  check "namespace file from the downward API" test "$(cat /proc/$PROCS/root/var/run/secrets/kubernetes.io/serviceaccount/namespace)" = default
  check "ca.crt from kube-root-ca.crt" grep -q "BEGIN CERTIFICATE" /proc/$PROCS/root/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
  check "/proc mounted in the container" bash -c "nsenter -t $PROCS -m -p cat /proc/mounts | grep -q '^proc /proc proc'"
fi
check "pod answers on its IP from the node" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 3 http://$IP1:8080/ | grep -q 'hello from web-1'"

# --- logs through the API server and the kubelet API ----------------------------------------
wait_for 15 "kubectl logs shows the container output" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG logs web-1 | grep -q serving"
check "kubectl logs --timestamps" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG logs web-1 --timestamps | grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z serving'"
check "CRI log file on the node" bash -c "grep -qE '^[0-9T:.Z-]+ stdout F serving' $TMP/node-a/logs/default_web-1_$UID1/httpd/0.log"
check "anonymous request to :10250 refused" bash -c "[ \"\$(nsenter --net=$(node_ns 1) curl -sk -o /dev/null -w '%{http_code}' https://10.123.0.11:10250/pods)\" = 401 ]"
# Authorization as the kubelet's Webhook mode: each request is a SubjectAccessReview to the API
# server, made with the node's credentials. A client the cluster CA vouches for, but whom the
# API server does not allow nodes/proxy, is refused; the API server's own client is allowed
# (kubectl logs above).
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/alice.key" \
  -out "$TMP/alice.csr" -subj /O=devs/CN=alice 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"$TMP/alice.ext"
openssl x509 -req -in "$TMP/alice.csr" -CA "$TMP/api/ca.crt" -CAkey "$TMP/api/ca.key" \
  -CAcreateserial -CAserial "$TMP/alice.srl" -out "$TMP/alice.crt" -days 1 -extfile "$TMP/alice.ext" 2>/dev/null
out=$(nsenter --net="$(node_ns 1)" curl -sk --cert "$TMP/alice.crt" --key "$TMP/alice.key" -w ' %{http_code}' https://10.123.0.11:10250/pods)
check "a client the API server does not authorize gets the kubelet's 403 ($out)" test "$out" = "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy) 403"
# Bearer tokens (what metrics-server and Prometheus send) are authenticated with a TokenReview:
# the admin's token may read /pods, the node's own token is authenticated but not authorized.
ADMIN_TOKEN=$(awk -F, '$2=="kubernetes-admin"{print $1}' "$TMP/api/tokens.csv")
NODE_TOKEN=$(awk -F, '$2=="system:node:node-a"{print $1}' "$TMP/api/tokens.csv")
out=$(nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $ADMIN_TOKEN" -o /dev/null -w '%{http_code}' https://10.123.0.11:10250/pods)
check "an admin's bearer token reads /pods on :10250 (TokenReview + SubjectAccessReview) ($out)" test "$out" = 200
out=$(nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $NODE_TOKEN" -w ' %{http_code}' https://10.123.0.11:10250/pods)
check "the node's own token: authenticated, not authorized ($out)" test "$out" = "Forbidden (user=system:node:node-a, verb=get, resource=nodes, subresource=proxy) 403"
out=$(nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer not-a-token" -o /dev/null -w '%{http_code}' https://10.123.0.11:10250/pods)
check "an unknown bearer token is 401 ($out)" test "$out" = 401
# What metrics-server scrapes for `kubectl top`: /metrics/resource.
nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $ADMIN_TOKEN" https://10.123.0.11:10250/metrics/resource >"$TMP/resource.prom"
check "/metrics/resource: the node's CPU and memory" bash -c "grep -qE '^node_cpu_usage_seconds_total [0-9.e+]+ [0-9]{13}$' $TMP/resource.prom && grep -qE '^node_memory_working_set_bytes [1-9][0-9.e+]* [0-9]{13}$' $TMP/resource.prom"
check "/metrics/resource: web-1's container and pod" bash -c "grep -qE '^container_memory_working_set_bytes\{container=\"httpd\",namespace=\"default\",pod=\"web-1\"\} [1-9]' $TMP/resource.prom && grep -qE '^pod_cpu_usage_seconds_total\{namespace=\"default\",pod=\"web-1\"\} ' $TMP/resource.prom && grep -q '^resource_scrape_error 0$' $TMP/resource.prom"
# /stats/summary: each container's writable layer (rootfs) and log directory (logs).
nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $ADMIN_TOKEN" https://10.123.0.11:10250/stats/summary >"$TMP/summary.json"
check "/stats/summary: web-1's httpd has rootfs and logs usage on their filesystems" bash -c "jq -e '[.pods[] | select(.podRef.name == \"web-1\") | .containers[] | select(.name == \"httpd\")][0] | (.rootfs.usedBytes > 0 and .rootfs.capacityBytes > 0 and .rootfs.inodesUsed > 0 and .logs.usedBytes > 0 and .logs.availableBytes > 0)' $TMP/summary.json >/dev/null"
# What Prometheus (kube-prometheus) scrapes for per-container dashboards: /metrics/cadvisor.
nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $ADMIN_TOKEN" https://10.123.0.11:10250/metrics/cadvisor >"$TMP/cadvisor.prom"
check "/metrics/cadvisor: web-1's httpd and web-1's pod cgroup with cAdvisor's labels (cgroup paths as id)" bash -c "grep -qE '^container_memory_working_set_bytes\{container=\"httpd\",id=\"/[^\"]+\",image=\"[^\"]+\",name=\"[0-9a-f]{64}\",namespace=\"default\",pod=\"web-1\"\} [1-9][0-9.e+]* [0-9]{13}$' $TMP/cadvisor.prom && grep -qE '^container_cpu_usage_seconds_total\{container=\"httpd\",cpu=\"total\",.*pod=\"web-1\"\} ' $TMP/cadvisor.prom && grep -qE '^container_memory_working_set_bytes\{container=\"\",id=\"/[^\"]+pod[^\"]+\",image=\"\",name=\"\",namespace=\"default\",pod=\"web-1\"\} [1-9]' $TMP/cadvisor.prom"
check "cubelet runs the kubelet API in Webhook authorization mode (the default)" grep -q 'kubelet API authorization.*mode=Webhook' "$TMP/node-a/cubelet.log"
# What an operator reads with `kubectl get --raw /api/v1/nodes/<node>/proxy/configz` and the
# kubelet's /runningpods/ (the runtime's own view of the pods).
nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $ADMIN_TOKEN" https://10.123.0.11:10250/configz >"$TMP/configz.json"
check "/configz: the effective settings in KubeletConfiguration form (--node-status-update-frequency 2: \"2s\")" bash -c "jq -e '.kubeletconfig.port == 10250 and .kubeletconfig.authorization.mode == \"Webhook\" and .kubeletconfig.nodeStatusUpdateFrequency == \"2s\" and .kubeletconfig.evictionHard[\"memory.available\"] == \"100Mi\"' $TMP/configz.json >/dev/null"
nsenter --net="$(node_ns 1)" curl -sk -H "Authorization: Bearer $ADMIN_TOKEN" https://10.123.0.11:10250/runningpods/ >"$TMP/runningpods.json"
WEB1_UID=$(k get pod web-1 -o jsonpath='{.metadata.uid}')
check "/runningpods/: web-1 with its running container, by the runtime" bash -c "jq -e --arg uid $WEB1_UID '.kind == \"PodList\" and ([.items[] | select(.metadata.name == \"web-1\" and .metadata.namespace == \"default\" and .metadata.uid == \$uid) | .spec.containers[].name] == [\"httpd\"])' $TMP/runningpods.json >/dev/null"

# --- the ClusterIP service load-balances over both pods -------------------------------------
SVC_IP=$(k get svc web -o jsonpath='{.spec.clusterIP}')
wait_for 30 "EndpointSlice has both pods" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get endpointslices -l kubernetes.io/service-name=web -o json | jq '[.items[].endpoints[]? | select(.conditions.ready)] | length')\" = 2 ]"
wait_for 30 "ClusterIP $SVC_IP answers from the node" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://$SVC_IP/ | grep -q 'hello from web-'"
seen=""
for _ in $(seq 1 30); do seen="$seen $(in_node 1 curl -s --max-time 2 http://$SVC_IP/ 2>/dev/null)"; done
check "ClusterIP reaches web-1" grep -q "web-1" <<<"$seen"
check "ClusterIP reaches web-2" grep -q "web-2" <<<"$seen"
check "KUBE-SERVICES has the service rule" bash -c "nsenter --net=$(node_ns 1) iptables-save -t nat | grep -q 'default/web:http cluster IP'"

# --- a crashing container restarts; bad images are reported ---------------------------------
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: crasher, namespace: default}
spec:
  nodeName: node-a
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo attempt; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {name: never-pull, namespace: default}
spec:
  nodeName: node-a
  containers:
  - name: main
    image: example.invalid/nothing:1
    imagePullPolicy: Never
---
apiVersion: v1
kind: Pod
metadata: {name: once, namespace: default}
spec:
  nodeName: node-a
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo done; exit 0"]
YAML
wait_for 60 "crasher restartCount grows" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod crasher -o jsonpath='{.status.containerStatuses[0].restartCount}')\" -ge 1 ]"
k get pod crasher -o json > "$TMP/crasher.json"
check "crasher last exit code 3" jq -e '[.status.containerStatuses[0].lastState.terminated.exitCode, .status.containerStatuses[0].state.terminated.exitCode] | index(3) != null' "$TMP/crasher.json"
wait_for 40 "crasher in CrashLoopBackOff" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod crasher -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -q CrashLoopBackOff"
wait_for 30 "unknown image: ErrImageNeverPull with a message" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod never-pull -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')\" = ErrImageNeverPull ]"
check "ErrImageNeverPull message names the image" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod never-pull -o jsonpath='{.status.containerStatuses[0].state.waiting.message}' | grep -q example.invalid/nothing:1"
wait_for 40 "restartPolicy Never pod Succeeded" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod once -o jsonpath='{.status.phase}')\" = Succeeded ]"
check "terminated reason Completed exit 0" test "$(k get pod once -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}')" = Completed/0

# --- cubectl shows the local pods ------------------------------------------------------------
in_node 1 "$CUBECTL" --socket "$TMP/node-a/run/cubelet.sock" pods > "$TMP/cubectl.txt" 2>&1
check "cubectl pods lists web-1 Running with its IP" grep -qE "web-1 .*Running.*$IP1" "$TMP/cubectl.txt"
check "cubectl pods lists the crasher's restarts" grep -q crasher "$TMP/cubectl.txt"

# --- graceful deletion leaves nothing -------------------------------------------------------
VETHS_BEFORE=$(in_node 1 ip -o link show type veth | grep -vc ' eth0@' )
k delete pod web-1 --wait=false >/dev/null
wait_for 40 "web-1 deleted from the API" bash -c "! $KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-1 >/dev/null 2>&1"
for h in cpu memory pids freezer; do
  check "web-1 $h cgroup removed" test ! -e "/sys/fs/cgroup/$h/$CG"
done
check "no mount of web-1 left" bash -c "! grep -q $UID1 /proc/self/mounts"
check "web-1 pod dir removed" test ! -e "$TMP/node-a/root/pods/$UID1"
check "one veth fewer on the node" test "$(in_node 1 ip -o link show type veth | grep -vc ' eth0@' )" -eq $((VETHS_BEFORE - 1))
check "ClusterIP still answers (web-2)" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://$SVC_IP/ | grep -q 'hello from web-2'"

k delete pod web-2 crasher never-pull once --wait=false >/dev/null
wait_for 60 "all pods deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
wait_for 20 "no pod cgroups left" bash -c "[ -z \"\$(ls -d /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/*/pod* /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/pod* 2>/dev/null)\" ]"
wait_for 20 "no pinned network namespaces left" bash -c "[ -z \"\$(ls $TMP/node-a/run/netns 2>/dev/null)\" ]"
wait_for 20 "no veth left on the node" bash -c "[ \$(nsenter --net=$(node_ns 1) ip -o link show type veth | grep -vc ' eth0@' ) -eq 0 ]" ||
  { in_node 1 ip -o link show type veth; ls -l "$TMP/node-a/root/sandboxes" "$TMP/node-a/root/network/ipam"/*; grep -h "veth\|sandbox" "$TMP/node-a/cubelet.log" | tail -20; } >&2
wait_for 20 "no container mounts left" bash -c "! grep -q ' $TMP/node-a/root' /proc/self/mounts"
check "service without endpoints rejects (no hang)" bash -c "! timeout 5 nsenter --net=$(node_ns 1) curl -s --max-time 3 http://$SVC_IP/"
