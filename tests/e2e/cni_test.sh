#!/usr/bin/env bash
# End to end, --network-plugin cni with Debian's containernetworking-plugins (bridge + host-local +
# portmap + loopback) on a real cubelet node: two pods get their addresses from the plugins,
# reach each other (source kept), a ClusterIP service and a hostPort (portmap) work, egress is
# masqueraded (bridge ipMasq), and deleting the pods leaves no veth, address, cache entry or
# portmap rule. A broken configuration (invalid subnet, missing plugin) shows up as the pod's
# FailedCreatePodSandBox event with the plugin's code and message, and the pod starts once the
# configuration is fixed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/net_lib.sh"
e2e_enter_netns "$@"
e2e_setup

CNI_BIN=/usr/lib/cni
for p in bridge host-local portmap loopback; do
  [ -x "$CNI_BIN/$p" ] || { echo "CNI plugin $p missing (apt-get install containernetworking-plugins); skipping"; exit 77; }
done
CONF_DIR=$TMP/cni/net.d
IPAM_DIR=$TMP/cni/ipam
SUBNET=10.244.200.0/24
mkdir -p "$CONF_DIR" "$IPAM_DIR"
# conflist SUBNET [BRIDGE-PLUGIN-TYPE]
conflist() {
  cat <<JSON
{
  "cniVersion": "0.4.0",
  "name": "e2e-pods",
  "plugins": [
    {"type": "${2:-bridge}", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$IPAM_DIR",
              "ranges": [[{"subnet": "$1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
}
conflist "$SUBNET" > "$CONF_DIR/10-e2e.conflist"

start_apiserver --node node-a || exit 1
net_start_node 1 node-a --network-plugin cni --cni-bin-dir "$CNI_BIN" --cni-conf-dir "$CONF_DIR"
wait_for 40 "node-a (CNI) registered and Ready" node_ready node-a
check "node log says the CNI network is ready" grep -q "CNI network ready" "$TMP/node-a/cubelet.log"

in_subnet() { python3 -c "import ipaddress,sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))" "$1" "$SUBNET"; }
ipam_ips() { find "$IPAM_DIR" -type f -name '10.*' 2>/dev/null | wc -l; }
eth0_has() { in_pod node-a "$1" default ip -4 -o addr show dev eth0 | grep -q " $2/24"; }
node_veths() { in_node 1 ip -o link show type veth | grep -vc ' eth0@'; }

{
  web_pod cni-1 node-a 'app: web, solo: one'
  web_pod cni-2 node-a
  web_pod hp node-a 'app: hp' ', hostPort: 8082'
  sleeper_pod client node-a
  cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: solo, namespace: default}
spec:
  selector: {solo: one}
  ports: [{name: http, port: 80, targetPort: 8080}]
YAML
} | k apply -f - >/dev/null || fail "kubectl apply"
for p in cni-1 cni-2 hp client; do wait_for 60 "$p Running" pod_is $p Running; done
declare -A PIP
for p in cni-1 cni-2 hp client; do PIP[$p]=$(pod_ip $p); done

# --- addresses come from the plugins and are reported ------------------------------------------
for p in cni-1 cni-2; do
  check "$p's podIP ${PIP[$p]} is from the CNI subnet $SUBNET" in_subnet "${PIP[$p]}"
  check "$p's podIPs lists it" test "$(k get pod $p -o jsonpath='{.status.podIPs[*].ip}')" = "${PIP[$p]}"
  check "$p's eth0 holds it" eth0_has $p "${PIP[$p]}"
done
check "pod IPs differ" test "${PIP[cni-1]}" != "${PIP[cni-2]}"
check "host-local holds 4 addresses" test "$(ipam_ips)" = 4
check "the plugins' bridge cni0 exists on the node" in_node 1 ip link show cni0
check "no built-in bridge cubelet0 in CNI mode" bash -c "! nsenter --net=$(node_ns 1) ip link show cubelet0 2>/dev/null"
check "a CNI result is cached per sandbox" test "$(ls "$TMP/node-a/root/network/cni" | grep -c -- '-eth0.json$')" = 4
check "loopback is up in the pod (loopback plugin)" pod_gets node-a cni-1 http://127.0.0.1:8080/ "hello from cni-1"

# --- pod to pod, service, hairpin, hostPort, egress ---------------------------------------------
check "cni-1 reaches cni-2 by pod IP" pod_gets node-a cni-1 "http://${PIP[cni-2]}:8080/" "hello from cni-2"
check "cni-2 reaches cni-1 by pod IP" pod_gets node-a cni-2 "http://${PIP[cni-1]}:8080/" "hello from cni-1"
wait_for 10 "cni-2 saw cni-1's pod IP as the source" log_has cni-2 "$(peer_re ${PIP[cni-1]})"
SVC_IP=$(k get svc web -o jsonpath='{.spec.clusterIP}')
wait_for 30 "EndpointSlice of web has both pods" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get endpointslices -l kubernetes.io/service-name=web -o json | jq '[.items[].endpoints[]? | select(.conditions.ready)] | length')\" = 2 ]"
wait_for 20 "ClusterIP $SVC_IP answers from the client pod" pod_gets node-a client "http://$SVC_IP/" "hello from cni-"
seen=""
for _ in $(seq 1 30); do seen="$seen $(get_from node-a client http://$SVC_IP/ 2>/dev/null)"; done
check "the service reaches cni-1" grep -q "hello from cni-1" <<<"$seen"
check "the service reaches cni-2" grep -q "hello from cni-2" <<<"$seen"
check "ClusterIP answers from the node" node_gets 1 "http://$SVC_IP/" "hello from cni-"
SOLO_IP=$(k get svc solo -o jsonpath='{.spec.clusterIP}')
wait_for 30 "cni-1 reaches itself through its service solo (hairpin)" pod_gets node-a cni-1 "http://$SOLO_IP/" "hello from cni-1"
wait_for 10 "hostPort 8082 (portmap) answers on the node's IP from the LAN" \
  bash -c "curl -s --max-time 2 http://10.123.0.11:8082/ | grep -q 'hello from hp'"
mkdir -p "$TMP/lan-www"
echo "lan says hi" > "$TMP/lan-www/index.html"
busybox httpd -f -v -p 10.123.0.1:9090 -h "$TMP/lan-www" 2>"$TMP/lan-httpd.log" &
LAN_HTTPD=$!
sleep 0.3
check "the client pod reaches the LAN" pod_gets node-a client http://10.123.0.1:9090/ "lan says hi"
sleep 0.3
check "the LAN saw the node's IP as the source (ipMasq)" grep -q "$(peer_re 10.123.0.11)" "$TMP/lan-httpd.log"
kill "$LAN_HTTPD" 2>/dev/null

# --- deletion releases everything ---------------------------------------------------------------
k delete pod cni-1 cni-2 hp client --wait=false >/dev/null
wait_for 60 "all pods deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
wait_for 20 "no veth left on the node" test "$(node_veths)" = 0
wait_for 10 "host-local released every address" test "$(ipam_ips)" = 0
check "CNI cache emptied" test -z "$(ls "$TMP/node-a/root/network/cni" 2>/dev/null | grep -- '-eth0.json$')"
check "portmap's DNAT rules are gone" bash -c "! nsenter --net=$(node_ns 1) iptables-save -t nat | grep -q -- '--dport 8082'"
check "no pinned network namespace left" test -z "$(ls "$TMP/node-a/run/netns" 2>/dev/null)"

# --- plugin errors are the pod's sandbox error ----------------------------------------------------
has_event() { events_for "$1" | grep -qF -- "$2"; }
conflist 10.244.300.0/24 > "$CONF_DIR/10-e2e.conflist"
web_pod bad node-a 'app: bad' | k apply -f - >/dev/null
wait_for 40 "invalid subnet: FailedCreatePodSandBox event with the plugin's message" \
  has_event bad "invalid CIDR address: 10.244.300.0/24"
events_for bad | grep FailedCreatePodSandBox | head -1 > "$TMP/bad-event.txt"
check "the event is FailedCreatePodSandBox" grep -q '^FailedCreatePodSandBox|' "$TMP/bad-event.txt"
check "the event names the plugin and the CNI error code" grep -q 'CNI plugin bridge ADD failed.*(code 999)' "$TMP/bad-event.txt"
check "the pod waits in ContainerCreating" test "$(k get pod bad -o jsonpath='{.status.phase}/{.status.containerStatuses[0].state.waiting.reason}')" = Pending/ContainerCreating
check "kubectl describe shows it" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG describe pod bad | grep -q 'invalid CIDR address'"
check "a failed ADD leaves no address, veth or cache entry" \
  bash -c "[ \$(find $IPAM_DIR -type f -name '10.*' | wc -l) = 0 ] && [ -z \"\$(ls $TMP/node-a/root/network/cni | grep -- -eth0.json)\" ]"
conflist "$SUBNET" nosuchplugin > "$CONF_DIR/10-e2e.conflist"
wait_for 30 "missing plugin: the event names it and the directory searched" \
  has_event bad "CNI plugin \"nosuchplugin\" not found in $CNI_BIN"
conflist "$SUBNET" > "$CONF_DIR/10-e2e.conflist"
wait_for 60 "once the configuration is fixed the pod starts" pod_is bad Running
check "and gets an address of the subnet" in_subnet "$(pod_ip bad)"
check "one address held" test "$(ipam_ips)" = 1
k delete pod bad --wait=false >/dev/null
wait_for 40 "bad deleted" bash -c "! $KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod bad >/dev/null 2>&1"
wait_for 10 "its address released" test "$(ipam_ips)" = 0
