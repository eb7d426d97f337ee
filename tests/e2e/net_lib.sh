# Helpers of the pod-network end-to-end tests (multinode, netconfig, cni), sourced after lib.sh.
# Pods are found on the machine through their cgroups: a container's processes are in
# <cgroup root>/<node>/kubepods[/<qos>]/pod<UID>/<container id>/cgroup.procs (every hierarchy holds
# the same tree; the memory one is read). Traffic "from a pod" is sent by entering only the
# pod's network namespace (nsenter --net=/proc/PID/ns/net) and running the host's curl there.

# Which node index runs node NAME (start_node records NODE_NS_<i>; names are kept here).
declare -A NET_NODE_INDEX=()

# net_start_node INDEX NAME [cubelet flags...] — start_node, plus what restart needs.
net_start_node() {
  local i=$1 name=$2
  NET_NODE_INDEX[$name]=$i
  shift 2
  printf '%s\0' "$@" > "$TMP/.node-$i.args"
  start_node "$i" "$name" "$@"
}

# net_kill9_node INDEX — the cubelet process of the node dies at once (pods keep running).
net_kill9_node() {
  local pid=${NODE_PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  NODE_PIDS[$1]=""
}

# net_relaunch_node INDEX NAME — starts the node's cubelet again with the same flags and dirs.
net_relaunch_node() {
  local i=$1 name=$2
  if declare -F run_cubelet >/dev/null; then run_cubelet "$i"; return; fi
  local -a extra=()
  mapfile -d '' extra < "$TMP/.node-$i.args"
  local dir=$TMP/$name ip=10.123.0.$((10 + i))
  nsenter --net="$(node_ns "$i")" "$CUBELET" --kubeconfig "$TMP/api/node-$name.kubeconfig" \
    --hostname-override "$name" --node-ip "$ip" --root-dir "$dir/root" --run-dir "$dir/run" \
    --pod-logs-dir "$dir/logs" --cgroup-root "$CGROUP_ROOT/$name" --client-ca-file "$TMP/api/ca.crt" \
    --cluster-cidr 10.244.0.0/16 --resolv-conf /dev/null --healthz-port 0 \
    --monitor-path "$MONITOR" --node-status-update-frequency 2 "${extra[@]}" >>"$dir/cubelet.log" 2>&1 &
  NODE_PIDS[$i]=$!
}

# pod_is POD PHASE [NAMESPACE]
pod_is() { [ "$(k -n "${3:-default}" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null)" = "$2" ]; }
pod_ip() { k -n "${2:-default}" get pod "$1" -o jsonpath='{.status.podIP}' 2>/dev/null; }
pod_uid() { k -n "${2:-default}" get pod "$1" -o jsonpath='{.metadata.uid}' 2>/dev/null; }
node_cidr() { k get node "$1" -o jsonpath='{.spec.podCIDR}' 2>/dev/null; }

# pod_pid NODE POD [NAMESPACE] [PATTERN] — a process of the pod's containers (one whose command
# line contains PATTERN, if given).
pod_pid() {
  local node=$1 pod=$2 ns=${3:-default} pat=${4:-}
  local uid
  uid=$(pod_uid "$pod" "$ns")
  [ -n "$uid" ] || return 1
  local f p
  for f in $(find "/sys/fs/cgroup/memory/$CGROUP_ROOT/$node/kubepods" -path "*/pod$uid/*" \
               -name cgroup.procs 2>/dev/null); do
    for p in $(cat "$f" 2>/dev/null); do
      if [ -z "$pat" ] || tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "$pat"; then
        echo "$p"
        return 0
      fi
    done
  done
  return 1
}

# in_pod NODE POD NAMESPACE command... — runs a host command in the pod's network namespace.
in_pod() {
  local node=$1 pod=$2 ns=$3
  shift 3
  local pid
  pid=$(pod_pid "$node" "$pod" "$ns") || { echo "no process of pod $ns/$pod on $node" >&2; return 1; }
  nsenter --net="/proc/$pid/ns/net" "$@"
}

# get_from NODE POD URL — body of an HTTP GET sent from inside the pod (2 s timeout).
get_from() { in_pod "$1" "$2" default curl -s --max-time 2 "$3"; }

# web_pod NAME NODE [LABELS] [EXTRA CONTAINER YAML] — a busybox httpd on :8080 answering
# "hello from NAME", logging every request's peer address (httpd -v) to its log.
web_pod() {
  local name=$1 node=$2 labels=${3:-"app: web"} extra=${4:-}
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: default, labels: {$labels}}
spec:
  nodeName: $node
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from $name > /www/index.html; exec httpd -f -v -p 8080 -h /www"]
    ports: [{containerPort: 8080, name: http$extra}]
---
YAML
}

# sleeper_pod NAME NODE — a pod that only sleeps (a client to send traffic from).
sleeper_pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: default, labels: {app: client}}
spec:
  nodeName: $2
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sleep", "100000"]
---
YAML
}

# route_via NODE_INDEX CIDR GATEWAY — the node's main table routes CIDR via GATEWAY.
route_via() { in_node "$1" ip -4 route show "$2" | grep -q "via $3 "; }
no_route() { [ -z "$(in_node "$1" ip -4 route show "$2")" ]; }

# events_for POD: "reason|message" lines of the pod's events.
events_for() {
  k get events -n "${2:-default}" -o json 2>/dev/null |
    jq -r --arg p "$1" '.items[] | select(.involvedObject.name==$p) | "\(.reason)|\(.message)"'
}

# pod_gets NODE POD URL TEXT — a GET from inside the pod returns a body containing TEXT.
pod_gets() { get_from "$1" "$2" "$3" | grep -q -- "$4"; }
# node_gets INDEX URL TEXT — the same from the node's own network namespace.
node_gets() { in_node "$1" curl -s --max-time 2 "$2" | grep -q -- "$3"; }
# peer_re IP — matches busybox httpd -v's line for a request from IP: "IP:PORT: response:200", or
# "[::ffff:IP]:PORT: ..." when it listens on an IPv6 socket (the usual case).
peer_re() { printf '^\\[\\?\\(::ffff:\\)\\?%s\\]\\?:[0-9]*: response:200' "${1//./\\.}"; }
# log_has POD REGEX [NAMESPACE] — kubectl logs of the pod has a line matching REGEX (not_: none).
not_log_has() { ! k -n "${3:-default}" logs "$1" 2>/dev/null | grep -q -- "$2"; }
log_has() { k -n "${3:-default}" logs "$1" 2>/dev/null | grep -q -- "$2"; }
