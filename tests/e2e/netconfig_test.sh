#!/usr/bin/env bash
# End to end, a pod's network configuration on a real cubelet node: resolv.conf per dnsPolicy
# (ClusterFirst with --cluster-dns/--cluster-domain and the namespace's search path, Default from
# --resolv-conf, None with dnsConfig, dnsConfig merged into ClusterFirst, hostNetwork pods falling
# back to the node's DNS unless ClusterFirstWithHostNet), and hostNetwork pods that get the node IP
# as their pod IP, see the node's interfaces and serve on the node's address.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/net_lib.sh"
e2e_enter_netns "$@"
e2e_setup

# The node's own resolver configuration (for dnsPolicy Default).
printf 'nameserver 10.123.0.1\nnameserver 10.123.0.2\nsearch lan.example corp.example\noptions timeout:2 attempts:3\n' \
  > "$TMP/node-resolv.conf"
# The cluster DNS comes from a KubeletConfiguration file (--config, as kubeadm sets nodes up),
# with a taint to register and a maxPods that the command line overrides.
cat >"$TMP/kubelet-config.yaml" <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
clusterDNS:
- 10.96.0.10
maxPods: 42
registerWithTaints:
- {key: dedicated, value: e2e, effect: NoSchedule}
cgroupDriver: systemd
nodeStatusUpdateFrequency: 0s
YAML
start_apiserver --node node-a || exit 1
net_start_node 1 node-a --config "$TMP/kubelet-config.yaml" --max-pods 40 --resolv-conf "$TMP/node-resolv.conf"
wait_for 40 "node-a registered and Ready" node_ready node-a
check "--config: the file's registerWithTaints is on the node" test "$(k get node node-a -o jsonpath='{.spec.taints[?(@.key=="dedicated")].effect}')" = NoSchedule
check "--config: --max-pods on the command line wins over the file's maxPods" test "$(k get node node-a -o jsonpath='{.status.capacity.pods}')" = 40
check "--config: what cubelet does not implement is logged" grep -q 'KubeletConfiguration fields cubelet does not implement (ignored): cgroupDriver' "$TMP/node-a/cubelet.log"

# (kubectl create namespace sends protobuf, which the test API server does not speak: YAML.)
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: team1}\n' | k apply -f - >/dev/null ||
  fail "create namespace team1"
pod() {  # pod NAME NAMESPACE "extra spec lines (2-space indented)"
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $2}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
$3
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sleep", "100000"]
---
YAML
}
{
  pod dns-cf team1 ""
  pod dns-default default "  dnsPolicy: Default"
  pod dns-none default "  dnsPolicy: None
  dnsConfig:
    nameservers: [10.0.0.53, 10.0.0.54]
    searches: [a.example, b.example]
    options: [{name: ndots, value: '2'}, {name: edns0}]"
  pod dns-merge default "  dnsConfig:
    searches: [extra.example]
    options: [{name: ndots, value: '3'}, {name: single-request}]"
  pod hostnet default "  hostNetwork: true"
  pod hostnet-cf default "  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet"
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: hostnet-web, namespace: default}
spec:
  nodeName: node-a
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from the node network > /www/index.html; exec httpd -f -p 8090 -h /www"]
    ports: [{containerPort: 8090}]
YAML
} | k apply -f - >/dev/null || fail "kubectl apply"

for p in dns-default dns-none dns-merge hostnet hostnet-cf hostnet-web; do
  wait_for 60 "$p Running" pod_is $p Running
done
wait_for 60 "team1/dns-cf Running" pod_is dns-cf Running team1

resolv() {  # resolv POD [NAMESPACE]: the container's /etc/resolv.conf
  local pid
  pid=$(pod_pid node-a "$1" "${2:-default}" sleep) || return 1
  cat "/proc/$pid/root/etc/resolv.conf"
}
# has_lines FILE_TEXT LINE... : every LINE is a whole line of the text.
has_lines() {
  local text=$1; shift
  for l in "$@"; do grep -qxF -- "$l" <<<"$text" || { echo "missing: $l" >&2; return 1; }; done
}
# has_options TEXT OPT... : one "options" line holding exactly these options, in any order (the
# kubelet merges them through a map).
has_options() {
  local text=$1; shift
  local want got
  want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  got=$(grep '^options ' <<<"$text" | cut -d' ' -f2- | tr ' ' '\n' | sort | tr '\n' ' ')
  [ "$(grep -c '^options ' <<<"$text")" = 1 ] && [ "$got" = "$want" ] || { echo "options: '$got' want '$want'" >&2; return 1; }
}
count_lines() { grep -c "^$2" <<<"$1"; }

# --- ClusterFirst (the default) ---------------------------------------------------------------
R=$(resolv dns-cf team1)
echo "$R" > "$TMP/resolv-dns-cf"
check "ClusterFirst: nameserver is the cluster DNS (the file's clusterDNS)" has_lines "$R" "nameserver 10.96.0.10"
check "ClusterFirst: no other nameserver" test "$(count_lines "$R" nameserver)" = 1
check "ClusterFirst: search path <ns>.svc.cluster.local svc.cluster.local cluster.local, then the node's" \
  has_lines "$R" "search team1.svc.cluster.local svc.cluster.local cluster.local lan.example corp.example"
check "ClusterFirst: options ndots:5" has_lines "$R" "options ndots:5"

# --- Default: the node's resolver (--resolv-conf) ---------------------------------------------
R=$(resolv dns-default)
check "Default: the node's nameservers" has_lines "$R" "nameserver 10.123.0.1" "nameserver 10.123.0.2"
check "Default: the node's search path" has_lines "$R" "search lan.example corp.example"
check "Default: not the cluster DNS" bash -c "! grep -q 10.96.0.10 <<<'$R'"
check "Default: the node's options" grep -q "timeout:2" <<<"$R"

# --- None + dnsConfig -------------------------------------------------------------------------
R=$(resolv dns-none)
check "None: exactly the dnsConfig nameservers" has_lines "$R" "nameserver 10.0.0.53" "nameserver 10.0.0.54"
check "None: two nameservers only" test "$(count_lines "$R" nameserver)" = 2
check "None: the dnsConfig searches only" has_lines "$R" "search a.example b.example"
check "None: options ndots:2 and edns0 (any order)" has_options "$R" ndots:2 edns0

# --- ClusterFirst + dnsConfig (merged) ---------------------------------------------------------
R=$(resolv dns-merge)
check "merge: cluster nameserver" has_lines "$R" "nameserver 10.96.0.10"
check "merge: extra search appended" has_lines "$R" "search default.svc.cluster.local svc.cluster.local cluster.local lan.example corp.example extra.example"
check "merge: ndots overridden to 3, single-request added" has_options "$R" ndots:3 single-request

# --- hostNetwork --------------------------------------------------------------------------------
check "hostNetwork pod's podIP is the node IP" test "$(pod_ip hostnet)" = 10.123.0.11
check "hostNetwork pod's podIPs is [node IP]" test "$(k get pod hostnet -o jsonpath='{.status.podIPs[*].ip}')" = 10.123.0.11
check "hostNetwork pod's hostIP is the node IP" test "$(k get pod hostnet -o jsonpath='{.status.hostIP}')" = 10.123.0.11
HPID=$(pod_pid node-a hostnet default sleep)
check "hostNetwork pod runs in the node's network namespace" \
  test "$(readlink /proc/$HPID/ns/net)" = "$(in_node 1 readlink /proc/self/ns/net)"
check "hostNetwork pod sees the node's eth0 and bridge" \
  bash -c "grep -q ' eth0:' /proc/$HPID/net/dev && grep -q 'cubelet0:' /proc/$HPID/net/dev"
check "hostNetwork pod sees the node address" bash -c "nsenter -t $HPID -n -m ip -4 -o addr 2>/dev/null | grep -q 10.123.0.11 || grep -q 10.123.0.11 /proc/$HPID/net/fib_trie"
# As with containerd: a hostNetwork pod shares the host's UTS namespace (the machine's hostname,
# not the node name given by --hostname-override).
check "hostNetwork pod shares the host's UTS namespace" test "$(readlink /proc/$HPID/ns/uts)" = "$(readlink /proc/self/ns/uts)"
check "hostNetwork pod has the machine's hostname" test "$(nsenter -t $HPID -u hostname)" = "$(hostname)"
R=$(resolv hostnet)
check "hostNetwork + ClusterFirst falls back to the node's DNS" has_lines "$R" "nameserver 10.123.0.1" "search lan.example corp.example"
R=$(resolv hostnet-cf)
check "hostNetwork + ClusterFirstWithHostNet: cluster DNS" has_lines "$R" "nameserver 10.96.0.10" "options ndots:5"
check "hostNetwork + ClusterFirstWithHostNet: cluster search path" grep -q "^search default.svc.cluster.local svc.cluster.local cluster.local" <<<"$R"
wait_for 10 "hostNetwork httpd answers on the node's IP from the LAN" \
  bash -c "curl -s --max-time 2 http://10.123.0.11:8090/ | grep -q 'hello from the node network'"
check "hostNetwork pods get no veth" test "$(in_node 1 ip -o link show type veth | grep -vc ' eth0@')" = 4
