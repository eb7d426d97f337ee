#!/usr/bin/env bash
# End to end, the service proxy of a real cubelet node in each --proxy-mode (iptables, nftables,
# userspace), with real traffic: ClusterIP load-balanced over two pods, NodePort on the node IP
# from the LAN and on 127.0.0.1 from the node, an externalIP from the LAN, sessionAffinity
# ClientIP keeping a client on one endpoint, a service without endpoints refused at once (not a
# black hole), /healthz on 10256 and the proxy metrics. cubelet is restarted with the next mode
# each time: the previous mode's rules must be gone.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

start_apiserver --node node-a || exit 1
start_node 1 node-a --proxy-mode iptables
wait_for 30 "node-a registered and Ready" node_ready

EXT_IP=10.123.0.200
for n in 1 2; do
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: web-$n, namespace: default, labels: {app: web}}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from \$(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080, name: http}]
YAML
done
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  externalIPs: ["$EXT_IP"]
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  selector: {app: nothing-matches}
  ports: [{name: http, port: 80, targetPort: 8080}]
YAML
pod_running() { [ "$(k get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; }
wait_for 60 "web-1 Running" pod_running web-1
wait_for 60 "web-2 Running" pod_running web-2
ready_endpoints() {
  k get endpointslices -l kubernetes.io/service-name="$1" -o json |
    jq '[.items[].endpoints[]? | select(.conditions.ready)] | length'
}
wait_for 30 "EndpointSlice of web has both pods" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get endpointslices -l kubernetes.io/service-name=web -o json | jq '[.items[].endpoints[]? | select(.conditions.ready)] | length')\" = 2 ]"
SVC_IP=$(k get svc web -o jsonpath='{.spec.clusterIP}')
STICKY_IP=$(k get svc sticky -o jsonpath='{.spec.clusterIP}')
EMPTY_IP=$(k get svc empty -o jsonpath='{.spec.clusterIP}')
NODE_PORT=$(k get svc web -o jsonpath='{.spec.ports[0].nodePort}')
check "web got a node port" test -n "$NODE_PORT"
# The LAN (this namespace) reaches the external IP through the node, as a router would.
ip route add "$EXT_IP/32" via 10.123.0.11

# spread CMD... : which pods answered 20 requests made by CMD (sorted, unique).
spread() {
  local seen=""
  for _ in $(seq 1 20); do seen="$seen $("$@" 2>/dev/null)"; done
  grep -o 'web-[12]' <<<"$seen" | sort -u | tr '\n' ' '
}
KCERT=(--cert "$TMP/api/kubelet-client.crt" --key "$TMP/api/kubelet-client.key")

prev=""
for mode in iptables nftables userspace; do
  if [ -n "$prev" ]; then
    stop_node 1
    eval "NODE_ARGS_1=\$(printf '%q ' --proxy-mode $mode)"
    run_cubelet 1
  fi
  log "--- proxy mode $mode"
  wait_for 30 "[$mode] ClusterIP answers from the node" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://$SVC_IP/ | grep -q 'hello from web-'"
  check "[$mode] ClusterIP load-balances over both pods" test "$(spread in_node 1 curl -s --max-time 2 "http://$SVC_IP/")" = "web-1 web-2 "
  check "[$mode] NodePort on the node IP from the LAN, both pods" test "$(spread curl -s --max-time 2 "http://10.123.0.11:$NODE_PORT/")" = "web-1 web-2 "
  if [ "$mode" = iptables ]; then
    # As kube-proxy: only the iptables mode serves NodePorts on 127.0.0.1 (route_localnet); the
    # nftables and userspace modes do not.
    check "[$mode] NodePort on 127.0.0.1 from the node" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://127.0.0.1:$NODE_PORT/ | grep -q 'hello from web-'"
  fi
  check "[$mode] externalIP from the LAN" bash -c "curl -s --max-time 2 http://$EXT_IP/ | grep -q 'hello from web-'"
  sticky=$(spread in_node 1 curl -s --max-time 2 "http://$STICKY_IP:8000/")
  check "[$mode] ClientIP affinity keeps one endpoint (saw: $sticky)" grep -qE '^web-[12] $' <<<"$sticky"
  in_node 1 timeout 5 curl -s --max-time 3 "http://$EMPTY_IP/" >/dev/null 2>&1
  rc=$?
  check "[$mode] no endpoints: refused at once (curl rc $rc = 7)" test "$rc" = 7
  check "[$mode] /healthz on 10256 is 200" test "$(in_node 1 curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://10.123.0.11:10256/healthz)" = 200
  check "[$mode] kube-proxy's /metrics on 127.0.0.1:10249" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 3 http://127.0.0.1:10249/metrics | grep -q '^kubeproxy_sync_proxy_rules_last_timestamp_seconds [1-9]'"
  check "[$mode] sync metrics on the kubelet port" bash -c "nsenter --net=$(node_ns 1) curl -sk --max-time 3 ${KCERT[*]} https://10.123.0.11:10250/metrics | grep -q '^kubeproxy_sync_proxy_rules_last_timestamp_seconds [1-9]'"
  case $mode in
    iptables)
      check "[$mode] kube-proxy chains in the nat table" bash -c "nsenter --net=$(node_ns 1) iptables-save -t nat | grep -q '^:KUBE-SVC-'"
      ;;
    nftables)
      check "[$mode] no KUBE-SVC chains of the iptables mode left" bash -c "! nsenter --net=$(node_ns 1) iptables-save -t nat | grep -q 'KUBE-SVC-\|KUBE-SEP-'"
      check "[$mode] cubelet's own nftables table" bash -c "nsenter --net=$(node_ns 1) nft list tables | grep -q 'ip cubelet'"
      ;;
    userspace)
      check "[$mode] no nftables table of the nftables mode left" bash -c "! nsenter --net=$(node_ns 1) nft list tables | grep -q 'ip cubelet'"
      check "[$mode] no KUBE-SVC chains (redirect portals only)" bash -c "! nsenter --net=$(node_ns 1) iptables-save -t nat | grep -q 'KUBE-SVC-'"
      check "[$mode] portal rules redirect to the proxy" bash -c "nsenter --net=$(node_ns 1) iptables-save -t nat | grep -q 'KUBE-PORTALS-.*REDIRECT'"
      ;;
  esac
  prev=$mode
done

# Endpoints change while running (userspace mode): a pod removed stops getting traffic.
k delete pod web-2 --wait=false >/dev/null
wait_for 40 "web-2 deleted" bash -c "! $KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-2 >/dev/null 2>&1"
wait_for 20 "[userspace] only web-1 answers after web-2 is gone" bash -c "[ \"\$(for i in 1 2 3 4 5 6; do nsenter --net=$(node_ns 1) curl -s --max-time 2 http://$SVC_IP/; done | grep -o 'web-[12]' | sort -u | tr '\n' ' ')\" = 'web-1 ' ]"

stop_node 1
