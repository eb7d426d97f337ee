#!/usr/bin/env bash
# kubectl (the real client, v1.32) against cubelet-test-apiserver: discovery, apply, get,
# patch of pods/status as the node, logs through the apiserver's kubelet proxy, delete.
set -euo pipefail
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
if [ ! -x "$KUBECTL" ]; then echo "SKIP: no kubectl at $KUBECTL"; exit 77; fi
TMP=$(mktemp -d /tmp/kubectl-e2e.XXXXXX)
SERVER_PID="" KUBELET_PID=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$KUBELET_PID" ] && kill "$KUBELET_PID" 2>/dev/null && wait "$KUBELET_PID" 2>/dev/null
  if [ -z "${KEEP_TMP:-}" ]; then rm -rf "$TMP"; else echo "kept $TMP"; fi
  exit $rc
}
trap cleanup EXIT
export HOME=$TMP/home KUBECONFIG=/nonexistent
mkdir -p "$HOME"
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok: $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $1" >&2; }
expect_eq() { if [ "$1" == "$2" ]; then ok "$3"; else bad "$3: got [$1] want [$2]"; fi; }
expect_match() { if grep -qE "$2" <<<"$1"; then ok "$3"; else bad "$3: [$1] does not match [$2]"; fi; }

"$BIN" --listen 127.0.0.1:0 --data-dir "$TMP/data" --node n1 >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
for _ in $(seq 600); do grep -q '^ready' "$TMP/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$TMP/server.out" || { cat "$TMP/server.err"; echo "server did not start"; exit 1; }
D=$TMP/data
A="$KUBECTL --kubeconfig $D/admin.kubeconfig --request-timeout=20s"
N="$KUBECTL --kubeconfig $D/node-n1.kubeconfig --request-timeout=20s"
NC="$KUBECTL --kubeconfig $D/node-n1-cert.kubeconfig --request-timeout=20s"

python3 "$HERE/fake_kubelet.py" "$D/apiserver.crt" "$D/apiserver.key" "$D/ca.crt" \
  >"$TMP/kubelet.out" 2>"$TMP/kubelet.err" &
KUBELET_PID=$!
for _ in $(seq 100); do [ -s "$TMP/kubelet.out" ] && break; sleep 0.1; done
KPORT=$(head -1 "$TMP/kubelet.out")

# The node registers itself (client certificate identity).
cat >"$TMP/node.yaml" <<YAML
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels: {kubernetes.io/hostname: n1, kubernetes.io/os: linux}
status:
  addresses: [{type: InternalIP, address: 127.0.0.1}, {type: Hostname, address: n1}]
  daemonEndpoints: {kubeletEndpoint: {Port: $KPORT}}
YAML
out=$($NC create -f "$TMP/node.yaml" 2>&1) && ok "node creates itself: $out" || bad "node create: $out"
expect_match "$($NC get node n1 -o jsonpath='{.metadata.name}' 2>&1)" '^n1$' "node reads itself"
expect_match "$($A get nodes 2>&1)" '^n1 ' "kubectl get nodes lists n1"
expect_match "$($A get nodes 2>&1 | head -1)" '^NAME +STATUS +ROLES +AGE +VERSION' "node table columns"

cat >"$TMP/app.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  nodeName: n1
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
YAML
out=$($A apply -f "$TMP/app.yaml" 2>&1) && ok "kubectl apply: $(echo $out)" || bad "kubectl apply: $out"
out=$($A apply -f "$TMP/app.yaml" 2>&1) && expect_match "$out" 'pod/web unchanged' "re-apply is unchanged" \
  || bad "second kubectl apply: $out"
json=$($A get pods -o json 2>&1)
expect_eq "$(jq -r '.items[0].metadata.name' <<<"$json")" web "get pods -o json"
expect_eq "$(jq -r '.items[0].spec.containers[0].imagePullPolicy' <<<"$json")" Always "defaulted imagePullPolicy"
expect_match "$(jq -r '.items[0].metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]' <<<"$json")" '"name":"web"' \
  "last-applied annotation"
expect_match "$($A get svc web -o jsonpath='{.spec.clusterIP}' 2>&1)" '^10\.' "service got a cluster IP"
expect_match "$($A get pods 2>&1 | head -1)" '^NAME +READY +STATUS +RESTARTS +AGE' "pod table columns"

# The node reports status through pods/status; then everyone sees it. `kubectl patch
# --subresource=status` GETs pods/status first, which the Node authorizer refuses (as on a real
# cluster), so the node's PATCH goes out directly (as the kubelet does); kubectl patch of the
# status subresource is shown with the admin identity.
uid=$($A get pod web -o jsonpath='{.metadata.uid}')
out=$($N patch pod web --subresource=status --type=strategic -p '{"status":{"phase":"Running"}}' 2>&1) \
  && bad "node kubectl patch --subresource=status: $out" \
  || expect_match "$out" 'cannot get resource "pods/status"' "node may not GET pods/status (kubectl patch reads it first)"
NTOKEN=$(grep ',system:node:n1,' "$D/tokens.csv" | cut -d, -f1)
SERVER=$(awk '/^ready/{print $2}' "$TMP/server.out")
code=$(curl -sS -o "$TMP/patch.out" -w '%{http_code}' --cacert "$D/ca.crt" -X PATCH \
  -H "Authorization: Bearer $NTOKEN" -H 'Content-Type: application/strategic-merge-patch+json' \
  "$SERVER/api/v1/namespaces/default/pods/web/status" \
  -d "{\"metadata\":{\"uid\":\"$uid\"},\"status\":{\"podIP\":\"10.244.0.7\",\"podIPs\":[{\"ip\":\"10.244.0.7\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}")
expect_eq "$code" 200 "node PATCHes pods/status with its token"
out=$($A patch pod web --subresource=status --type=strategic -p '{"status":{"phase":"Running"}}' 2>&1) \
  && ok "kubectl patch --subresource=status: $out" || bad "admin status patch: $out"
json=$($N get pods -o json --field-selector spec.nodeName=n1 2>&1)
expect_eq "$(jq -r '.items[0].status.phase' <<<"$json")" Running "node sees its status"
expect_eq "$(jq -r '.items[0].status.podIP' <<<"$json")" 10.244.0.7 "podIP"
out=$($N get pods 2>&1) && bad "node lists all pods: $out" || expect_match "$out" 'can only list/watch pods with spec.nodeName field selector' "node refused without field selector"
for _ in $(seq 50); do
  eps=$($A get endpointslices -l kubernetes.io/service-name=web -o json 2>&1)
  [ "$(jq -r '.items[0].endpoints[0].addresses[0]' <<<"$eps")" == 10.244.0.7 ] && break
  sleep 0.1
done
expect_eq "$(jq -r '.items[0].endpoints[0].addresses[0]' <<<"$eps")" 10.244.0.7 "endpointslice follows the pod"
expect_eq "$(jq -r '.items[0].ports[0].port' <<<"$eps")" 8080 "endpointslice port is the target port"

# Logs through the apiserver's kubelet proxy.
expect_eq "$($A logs web 2>&1)" $'hello from web\nsecond line\nthird line' "kubectl logs"
expect_eq "$($A logs web --tail=1 2>&1)" "third line" "kubectl logs --tail=1"
expect_eq "$($A logs web -f --tail=1 2>&1)" $'third line\nfollowed' "kubectl logs -f streams"
expect_match "$($A logs web -c nope 2>&1)" 'container nope is not valid for pod web' "unknown container"

# Graceful delete by the user, final delete by the node.
out=$($A delete pod web --wait=false 2>&1) && ok "delete: $out" || bad "delete: $out"
expect_match "$($A get pod web -o jsonpath='{.metadata.deletionGracePeriodSeconds}' 2>&1)" '^30$' "graceful deletion"
out=$($N delete pod web --grace-period=0 --force 2>&1) && ok "node final delete: $(echo $out)" || bad "node final delete: $out"
expect_match "$($A get pod web 2>&1)" 'NotFound|not found' "pod gone"
out=$($A delete svc web 2>&1) && ok "delete service" || bad "delete service: $out"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
