#!/usr/bin/env bash
# End to end: `kubectl port-forward` through the test API server's pods/portforward to cubelet's
# kubelet API, both ways kubectl 1.32 has: SPDY tunnelled through a WebSocket (the default; the
# API server unwraps it and speaks SPDY/3.1 portforward.k8s.io to the kubelet, as a real one
# does) and plain SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false). The connections end in the
# pod's own network namespace: a server bound to the pod's 127.0.0.1 is reachable.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

one_node

cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www /lo && echo hello > /www/index.html && seq 1 300000 > /www/big && echo loopback-only > /lo/index.html && httpd -p 127.0.0.1:8081 -h /lo && exec httpd -f -p 8080 -h /www"]
YAML
wait_pod 60 web '{.status.phase}' Running
wait_for 20 "httpd listening in the pod" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG exec web -- wget -qO- http://127.0.0.1:8080/index.html | grep -q hello"

# forward NAME ENV... -- ARGS: starts kubectl port-forward in the background, waits for it.
PF_PIDS=()
forward() {
  local name=$1; shift
  env "$@" "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" port-forward pod/web "${PF_ARGS[@]}" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PF_PIDS+=($!)
  wait_for 20 "$name: kubectl port-forward listening" grep -q 'Forwarding from 127.0.0.1' "$TMP/$name.out"
}
cleanup_forwards() { for p in "${PF_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; PF_PIDS=(); }

want_big=$(seq 1 300000 | md5sum)
for mode in websocket spdy; do
  if [ $mode = websocket ]; then envs=(KUBECTL_PORT_FORWARD_WEBSOCKETS=true); base=18000; else envs=(KUBECTL_PORT_FORWARD_WEBSOCKETS=false); base=19000; fi
  PF_ARGS=("$((base + 80)):8080" "$((base + 81)):8081" "$((base + 99)):9999")
  forward "pf-$mode" "${envs[@]}"
  check "$mode: a page through the forward" test "$(curl -sS --max-time 10 http://127.0.0.1:$((base + 80))/index.html)" = hello
  check "$mode: 2 MB arrive whole" test "$(curl -sS --max-time 20 http://127.0.0.1:$((base + 80))/big | md5sum)" = "$want_big"
  for i in 1 2 3 4 5 6; do curl -sS --max-time 20 -o "$TMP/par$i" http://127.0.0.1:$((base + 80))/big & done; wait_pids=$(jobs -p | tail -6)
  for p in $wait_pids; do wait "$p" 2>/dev/null; done
  ok=1; for i in 1 2 3 4 5 6; do [ "$(md5sum <"$TMP/par$i")" = "$want_big" ] || ok=0; done
  check "$mode: six connections at once over one session" test $ok = 1
  check "$mode: the pod's own loopback (127.0.0.1:8081 inside the pod)" test "$(curl -sS --max-time 10 http://127.0.0.1:$((base + 81))/index.html)" = loopback-only
  curl -sS --max-time 10 http://127.0.0.1:$((base + 99))/ >/dev/null 2>&1
  wait_for 10 "$mode: a closed port is reported by kubectl" grep -q 'error forwarding port 9999 to pod .*failed to connect to localhost:9999' "$TMP/pf-$mode.err"
  cleanup_forwards
done
check "cubelet served the forwards over SPDY/3.1 portforward.k8s.io" grep -q 'port forward started.*protocol=SPDY/3.1+portforward.k8s.io' "$TMP/node-a/cubelet.log"
check "the WebSocket mode was tunnelled (no fallback to SPDY)" grep -q 'tunnelling SPDY through a WebSocket.*protocol=SPDY/3.1+portforward.k8s.io' "$TMP/api.log"
check "a session's connections are counted when it ends" grep -q 'port forward finished.*connections=' "$TMP/node-a/cubelet.log"

# Errors before the upgrade, as kubectl shows them.
out=$(k port-forward pod/nope 18500:80 2>&1); rc=$?
check "port-forward to a missing pod fails (rc=$rc: $out)" bash -c "[ $rc != 0 ] && grep -q 'pods \"nope\" not found' <<<'$out'"

k delete pod web --wait=false >/dev/null
wait_for 60 "pod deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
