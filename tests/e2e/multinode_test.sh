#!/usr/bin/env bash
# End to end, the built-in pod network across nodes: three cubelet nodes on one "LAN" (each in its
# own network namespace) get their pod CIDRs from the API, route each other's pod CIDRs host-gw
# style (learned from the Node objects), and run pods that reach pods on the other nodes by pod IP
# and through a ClusterIP service whose endpoints span the nodes, with the client pod's source
# address kept. Traffic leaving the cluster CIDR is masqueraded to the node IP; a pod reaches
# itself through its own service (hairpin); a hostPort answers on the node's IP from the LAN.
# cubelet killed with SIGKILL and started again keeps its pods' addresses and hands out no address
# twice; a node deleted from the API loses its routes on the others; a node added later gets them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/net_lib.sh"
e2e_enter_netns "$@"
e2e_setup

start_apiserver --node node-a --node node-b --node node-c --node node-d || exit 1
net_start_node 1 node-a
net_start_node 2 node-b
net_start_node 3 node-c
for n in node-a node-b node-c; do wait_for 40 "$n registered and Ready" node_ready $n; done

# --- pod CIDRs from the API, node bridges, host-gw routes ------------------------------------
declare -A CIDR IP
IP[node-a]=10.123.0.11 IP[node-b]=10.123.0.12 IP[node-c]=10.123.0.13
for n in node-a node-b node-c; do
  wait_for 20 "$n has a pod CIDR from the API" test -n "$(node_cidr $n)"
  CIDR[$n]=$(node_cidr $n)
done
check "pod CIDRs differ (${CIDR[node-a]} ${CIDR[node-b]} ${CIDR[node-c]})" \
  test "$(printf '%s\n' "${CIDR[@]}" | sort -u | wc -l)" = 3
gw() { python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[1])" "$1"; }
in_cidr() { python3 -c "import ipaddress,sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))" "$1" "$2"; }
for n in node-a node-b node-c; do
  i=${NET_NODE_INDEX[$n]}
  wait_for 20 "$n: bridge cubelet0 holds $(gw "${CIDR[$n]}")" \
    bash -c "nsenter --net=$(node_ns "$i") ip -4 -o addr show dev cubelet0 | grep -q ' $(gw "${CIDR[$n]}")/'"
  for m in node-a node-b node-c; do
    [ "$m" = "$n" ] && continue
    wait_for 20 "$n routes $m's pod CIDR ${CIDR[$m]} via ${IP[$m]}" route_via "$i" "${CIDR[$m]}" "${IP[$m]}"
  done
  check "$n has no route of its own pod CIDR via a peer" bash -c "! nsenter --net=$(node_ns "$i") ip -4 route show ${CIDR[$n]} | grep -q via"
done

# --- pods on every node, two services ----------------------------------------------------------
{
  web_pod web-a node-a 'app: web, solo: a'
  web_pod web-b node-b
  web_pod web-c node-c
  web_pod hp node-b 'app: hp' ', hostPort: 8081'
  sleeper_pod client-a node-a
  sleeper_pod client-b node-b
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
  selector: {solo: a}
  ports: [{name: http, port: 80, targetPort: 8080}]
YAML
} | k apply -f - >/dev/null || fail "kubectl apply"
for p in web-a web-b web-c hp client-a client-b; do wait_for 60 "$p Running" pod_is $p Running; done
declare -A PIP
for p in web-a web-b web-c hp client-a client-b; do PIP[$p]=$(pod_ip $p); done
check "web-a's IP ${PIP[web-a]} is in node-a's CIDR" in_cidr "${PIP[web-a]}" "${CIDR[node-a]}"
check "web-b's IP ${PIP[web-b]} is in node-b's CIDR" in_cidr "${PIP[web-b]}" "${CIDR[node-b]}"
check "web-c's IP ${PIP[web-c]} is in node-c's CIDR" in_cidr "${PIP[web-c]}" "${CIDR[node-c]}"
check "client-a's IP ${PIP[client-a]} is in node-a's CIDR" in_cidr "${PIP[client-a]}" "${CIDR[node-a]}"
check "pod IPs are all different" test "$(printf '%s\n' "${PIP[@]}" | sort -u | wc -l)" = 6

# --- pod to pod across nodes, by pod IP, source kept --------------------------------------------
check "client-a reaches web-a (same node) by pod IP" pod_gets node-a client-a http://${PIP[web-a]}:8080/ "hello from web-a" 
for p in web-b web-c; do
  check "client-a (node-a) reaches $p by pod IP ${PIP[$p]}" \
    pod_gets node-a client-a http://${PIP[$p]}:8080/ "hello from $p"
done
check "client-b (node-b) reaches web-c by pod IP" \
  pod_gets node-b client-b http://${PIP[web-c]}:8080/ "hello from web-c"
# busybox httpd -v logs "[::ffff:<peer address>]:<port>: response:200" on stderr (peer_re).
for p in web-b web-c; do
  wait_for 10 "$p's log shows client-a's pod IP as the source (no masquerade in the cluster)" \
    log_has $p "$(peer_re ${PIP[client-a]})"
  check "$p's log has no request from node-a's address" \
    not_log_has $p "$(peer_re ${IP[node-a]})"
done

# --- a ClusterIP service over the three nodes' pods --------------------------------------------
SVC_IP=$(k get svc web -o jsonpath='{.spec.clusterIP}')
wait_for 30 "EndpointSlice of web has 3 ready endpoints" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get endpointslices -l kubernetes.io/service-name=web -o json | jq '[.items[].endpoints[]? | select(.conditions.ready)] | length')\" = 3 ]"
for n in node-a node-b node-c; do
  i=${NET_NODE_INDEX[$n]}
  wait_for 20 "$n's proxy programs service web" bash -c "nsenter --net=$(node_ns "$i") iptables-save -t nat | grep -q 'default/web:http cluster IP'"
  wait_for 20 "$n's proxy has 3 endpoints for web" bash -c "[ \$(nsenter --net=$(node_ns "$i") iptables-save -t nat | grep -c -- '-A KUBE-SEP-.*default/web:http.* -j DNAT') = 3 ]"
done
seen=""
for _ in $(seq 1 40); do seen="$seen $(get_from node-a client-a http://$SVC_IP/ 2>/dev/null)"; done
for p in web-a web-b web-c; do check "service web from client-a (node-a) reaches $p" grep -q "hello from $p" <<<"$seen"; done
seen=""
for _ in $(seq 1 40); do seen="$seen $(get_from node-b client-b http://$SVC_IP/ 2>/dev/null)"; done
for p in web-a web-b web-c; do check "service web from client-b (node-b) reaches $p" grep -q "hello from $p" <<<"$seen"; done
# client-b sent nothing to web-a or web-c but through the service: its address in their logs means
# the DNAT to another node kept the source.
for p in web-a web-c; do
  check "via the service, $p saw client-b's pod IP as the source" \
    log_has $p "$(peer_re ${PIP[client-b]})"
done
for n in node-a node-b node-c; do
  i=${NET_NODE_INDEX[$n]}
  seen=""
  for _ in $(seq 1 40); do seen="$seen $(in_node "$i" curl -s --max-time 2 http://$SVC_IP/ 2>/dev/null)"; done
  check "service web from $n itself reaches all three pods" \
    bash -c "grep -q 'from web-a' <<<'$seen' && grep -q 'from web-b' <<<'$seen' && grep -q 'from web-c' <<<'$seen'"
done

# --- egress leaves the cluster CIDR masqueraded to the node IP ----------------------------------
mkdir -p "$TMP/lan-www"
echo "lan says hi" > "$TMP/lan-www/index.html"
busybox httpd -f -v -p 10.123.0.1:9090 -h "$TMP/lan-www" 2>"$TMP/lan-httpd.log" &
LAN_HTTPD=$!
sleep 0.3
check "client-a reaches a LAN address outside the cluster CIDR" \
  pod_gets node-a client-a http://10.123.0.1:9090/ "lan says hi"
check "client-b reaches a LAN address outside the cluster CIDR" \
  pod_gets node-b client-b http://10.123.0.1:9090/ "lan says hi"
sleep 0.3
check "the LAN saw node-a's IP as the source of client-a's request" grep -q "$(peer_re ${IP[node-a]})" "$TMP/lan-httpd.log"
check "the LAN saw node-b's IP as the source of client-b's request" grep -q "$(peer_re ${IP[node-b]})" "$TMP/lan-httpd.log"
check "no pod IP reached the LAN" bash -c "! grep -q '^10\.244\.' $TMP/lan-httpd.log"

# --- hairpin: a pod through its own service -----------------------------------------------------
SOLO_IP=$(k get svc solo -o jsonpath='{.spec.clusterIP}')
wait_for 30 "service solo has web-a as its endpoint" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get endpointslices -l kubernetes.io/service-name=solo -o json | jq -r '[.items[].endpoints[]? | select(.conditions.ready) | .addresses[0]] | join(\",\")')\" = ${PIP[web-a]} ]"
wait_for 20 "web-a reaches itself through its service solo ($SOLO_IP)" \
  pod_gets node-a web-a http://$SOLO_IP/ "hello from web-a"
check "client-a reaches web-a through service solo" \
  pod_gets node-a client-a http://$SOLO_IP/ "hello from web-a"

# --- hostPort ---------------------------------------------------------------------------------
wait_for 10 "hostPort 8081 of hp answers on node-b's IP from the LAN" \
  bash -c "curl -s --max-time 2 http://${IP[node-b]}:8081/ | grep -q 'hello from hp'"
check "hostPort answers from another node (node-a)" \
  bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://${IP[node-b]}:8081/ | grep -q 'hello from hp'"
check "hostPort answers from a pod on another node (client-a)" \
  pod_gets node-a client-a http://${IP[node-b]}:8081/ "hello from hp"
check "hostPort answers from a pod on the same node (client-b)" \
  pod_gets node-b client-b http://${IP[node-b]}:8081/ "hello from hp"
check "hostPort is not open on node-a" bash -c "! curl -s --max-time 2 http://${IP[node-a]}:8081/"

# --- IPAM across a cubelet crash (kill -9) on node-b --------------------------------------------
ipam_count() { find "$TMP/node-b/root/network/ipam" -mindepth 2 -name '10.*' -not -name last_reserved | wc -l; }
check "node-b's IPAM holds 3 addresses (web-b, hp, client-b)" test "$(ipam_count)" = 3
declare -A CID
for p in web-b hp client-b; do CID[$p]=$(k get pod $p -o jsonpath='{.status.containerStatuses[0].containerID}'); done
net_kill9_node 2
check "web-b still answers while node-b's cubelet is down" \
  pod_gets node-a client-a http://${PIP[web-b]}:8080/ "hello from web-b"
RESTARTS_BEFORE=$(grep -c '"starting cubelet"\|msg="starting cubelet"\|starting cubelet' "$TMP/node-b/cubelet.log")
net_relaunch_node 2 node-b
wait_for 20 "node-b's cubelet started again" bash -c "[ \$(grep -c 'starting cubelet' $TMP/node-b/cubelet.log) -gt $RESTARTS_BEFORE ]"
wait_for 30 "node-b Ready again" node_ready node-b
web_pod new-b node-b 'app: new' | k apply -f - >/dev/null
wait_for 60 "new-b Running on node-b after the restart" pod_is new-b Running
NEW_IP=$(pod_ip new-b)
check "new-b ($NEW_IP) got an address no running pod holds" \
  bash -c "! printf '%s\n' ${PIP[*]} | grep -qx '$NEW_IP'"
check "new-b's IP is in node-b's CIDR" in_cidr "$NEW_IP" "${CIDR[node-b]}"
for p in web-b hp client-b; do
  check "$p kept its IP ${PIP[$p]} across the restart" test "$(pod_ip $p)" = "${PIP[$p]}"
  check "$p kept its container (not restarted)" test "$(k get pod $p -o jsonpath='{.status.containerStatuses[0].containerID}/{.status.containerStatuses[0].restartCount}')" = "${CID[$p]}/0"
done
check "node-b's IPAM holds 4 addresses" test "$(ipam_count)" = 4
check "each address held by one sandbox" test "$(find "$TMP/node-b/root/network/ipam" -mindepth 2 -name '10.*' -exec cat {} + | sort | uniq -d | wc -l)" = 0
check "client-a reaches new-b across nodes" \
  pod_gets node-a client-a http://$NEW_IP:8080/ "hello from new-b"
check "client-a still reaches web-b" \
  pod_gets node-a client-a http://${PIP[web-b]}:8080/ "hello from web-b"
check "hostPort still answers after the restart" \
  bash -c "curl -s --max-time 2 http://${IP[node-b]}:8081/ | grep -q 'hello from hp'"
k delete pod new-b --wait=false >/dev/null
wait_for 40 "new-b deleted" bash -c "! $KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod new-b >/dev/null 2>&1"
wait_for 10 "new-b's address released" bash -c "[ \$(find $TMP/node-b/root/network/ipam -mindepth 2 -name '10.*' | wc -l) = 3 ]"

# --- a node leaves, another joins -----------------------------------------------------------------
stop_node 3
k delete node node-c >/dev/null || fail "kubectl delete node node-c"
for i in 1 2; do
  wait_for 20 "node $i lost the route to node-c's pod CIDR ${CIDR[node-c]}" no_route "$i" "${CIDR[node-c]}"
done
check "node-a kept its route to node-b" route_via 1 "${CIDR[node-b]}" "${IP[node-b]}"
net_start_node 4 node-d
IP[node-d]=10.123.0.14
wait_for 40 "node-d registered and Ready" node_ready node-d
wait_for 20 "node-d has a pod CIDR" test -n "$(node_cidr node-d)"
CIDR[node-d]=$(node_cidr node-d)
for i in 1 2; do
  wait_for 20 "node $i routes node-d's pod CIDR ${CIDR[node-d]} via ${IP[node-d]}" route_via "$i" "${CIDR[node-d]}" "${IP[node-d]}"
done
wait_for 20 "node-d routes node-a's pod CIDR" route_via 4 "${CIDR[node-a]}" "${IP[node-a]}"
wait_for 20 "node-d routes node-b's pod CIDR" route_via 4 "${CIDR[node-b]}" "${IP[node-b]}"
check "node-d has no route to the deleted node-c" bash -c "! nsenter --net=$(node_ns 4) ip -4 route | grep -q 'via ${IP[node-c]}'"
web_pod web-d node-d 'app: web' | k apply -f - >/dev/null
wait_for 60 "web-d Running" pod_is web-d Running
check "client-a reaches web-d on the new node" \
  pod_gets node-a client-a "http://$(pod_ip web-d):8080/" "hello from web-d"

kill "$LAN_HTTPD" 2>/dev/null
