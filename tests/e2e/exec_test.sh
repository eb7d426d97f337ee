#!/usr/bin/env bash
# End to end: `kubectl exec` through the test API server's pods/exec proxy to cubelet's kubelet
# API (WebSocket v5.channel.k8s.io, TLS with the apiserver's client cert), and `cubectl exec`
# through the node's debug socket. The commands run inside the real container: its namespaces,
# cgroup and root filesystem.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

start_apiserver --node node-a || exit 1
start_node 1 node-a
wait_for 30 "node-a registered and Ready" node_ready

cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: shell, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo marker > /tmp/inside; exec sleep 100000"]
    resources:
      limits: {cpu: 100m, memory: 32Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: two, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
  containers:
  - {name: first, image: busybox:e2e, imagePullPolicy: IfNotPresent, command: ["sleep", "100000"]}
  - {name: second, image: busybox:e2e, imagePullPolicy: IfNotPresent, command: ["sleep", "100000"]}
YAML
wait_for 60 "pod shell Running" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod shell -o jsonpath='{.status.phase}')\" = Running ]"
wait_for 60 "pod two Running" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod two -o jsonpath='{.status.phase}')\" = Running ]"

# --- kubectl exec --------------------------------------------------------------------------
k exec shell -- sh -c 'echo out; echo err >&2; exit 3' >"$TMP/out" 2>"$TMP/err"
rc=$?
check "kubectl exec exits with the command's code (3, got $rc)" test "$rc" = 3
check "stdout on stdout" test "$(cat "$TMP/out")" = out
check "stderr on stderr, then kubectl's exit message" test "$(cat "$TMP/err")" = "$(printf 'err\ncommand terminated with exit code 3')"
check "exit 0 is success" k exec shell -- true
check "echo hi | kubectl exec -i POD -- cat echoes" test "$(echo hi | k exec -i shell -- cat)" = hi
check "stdin is half-closed at its end (wc sees all of it)" test "$(seq 1 20000 | k exec -i shell -- wc -l | tr -d ' ')" = 20000
check "hostname is the pod name" test "$(k exec shell -- hostname)" = shell
check "the command sees the container's filesystem" test "$(k exec shell -- cat /tmp/inside)" = marker
big=$(k exec shell -- sh -c 'seq 1 200000' | md5sum)
check "200000 lines of output arrive whole" test "$big" = "$(seq 1 200000 | md5sum)"

# kubectl's SPDY/3.1 path (its fallback; also what a real 1.30+ API server speaks to the kubelet).
spdy() { KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
spdy exec shell -- sh -c 'echo out; echo err >&2; exit 4' >"$TMP/sout" 2>"$TMP/serr"
rc=$?
check "SPDY: exit code 4 (got $rc)" test "$rc" = 4
check "SPDY: stdout" test "$(cat "$TMP/sout")" = out
check "SPDY: stderr" test "$(head -1 "$TMP/serr")" = err
check "SPDY: stdin echoes and is closed at its end" test "$(seq 1 5000 | spdy exec -i shell -- wc -l | tr -d ' ')" = 5000
check "SPDY: cubelet served it over SPDY" grep -q 'protocol=SPDY/3.1+v4.channel.k8s.io' "$TMP/node-a/cubelet.log"
check "WebSocket: cubelet served kubectl over v5.channel.k8s.io" grep -q 'protocol=v5.channel.k8s.io' "$TMP/node-a/cubelet.log"

PID=$(k exec shell -- sh -c 'echo $$')
check "pid namespace: the exec'd shell is not pid 1 and sees the container's init" bash -c "[ -n '$PID' ] && [ '$PID' != 1 ] && $KUBECTL --kubeconfig $ADMIN_KUBECONFIG exec shell -- cat /proc/1/cmdline | tr '\0' ' ' | grep -q 'sleep 100000'"
UID1=$(k get pod shell -o jsonpath='{.metadata.uid}')
CG=$(find /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a -type d -name "pod$UID1" | head -1)
check "found the pod's memory cgroup" test -n "$CG"
k exec shell -- sh -c 'cat /proc/self/cgroup' >"$TMP/cg"
check "the exec'd process is in the container's memory cgroup (namespaced view is /)" grep -qE '^[0-9]+:memory:/$' "$TMP/cg"
# While a long exec runs, its process is in the container cgroup on the host.
k exec shell -- sh -c 'exec sleep 7' &
EXEC_BG=$!
in_cgroup() { cat $CG/*/cgroup.procs 2>/dev/null | while read -r p; do tr '\0' ' ' </proc/$p/cmdline 2>/dev/null; echo; done | grep -q '^sleep 7'; }
wait_for 5 "a running exec sits in the container's cgroup on the host" in_cgroup
kill "$EXEC_BG" 2>/dev/null; wait "$EXEC_BG" 2>/dev/null
wait_for 10 "the command dies when kubectl goes away" bash -c "! pgrep -f '^sleep 7\$' >/dev/null"

check "-c picks the container" test "$(k exec two -c second -- hostname)" = two
out=$(k exec shell -c nope -- true 2>&1); rc=$?
check "missing container: kubectl's error (rc=$rc: $out)" bash -c '[ "$1" -ne 0 ] && grep -q "container nope is not valid for pod shell" <<<"$2"' _ "$rc" "$out"
out=$(k exec nosuchpod -- true 2>&1); rc=$?
check "missing pod: NotFound (rc=$rc: $out)" bash -c '[ "$1" -ne 0 ] && grep -q "pods \"nosuchpod\" not found" <<<"$2"' _ "$rc" "$out"
out=$(k exec shell -- no-such-binary 2>&1); rc=$?
check "unknown executable: kubectl's error (rc=$rc: $out)" bash -c '[ "$1" -ne 0 ] && grep -q "executable file not found" <<<"$2"' _ "$rc" "$out"
out=$(k exec -t shell -- true 2>&1 </dev/null); rc=$?
check "-t without a terminal still runs (kubectl drops the TTY)" test "$rc" = 0
# With a terminal (script(1) gives kubectl one, sized 33x77): the command runs on a terminal of
# the container's own devpts, gets kubectl's size, and an interactive shell reads typed lines.
# (script(1) types an end-of-file character into kubectl's terminal when its own stdin ends,
# which the container's terminal may echo first as "^@": lines are matched without "^".)
out=$(script -qec "stty rows 33 cols 77; $KUBECTL --kubeconfig $ADMIN_KUBECONFIG exec -ti shell -- sh -c 'tty; stty size; exit 5'" /dev/null 2>&1 </dev/null | tr -d '\r'); rc=$?
check "-ti: the command's exit code (5, got $rc: $out)" test "$rc" = 5
check "-ti: the command's terminal is the container's /dev/pts/N" grep -q '/dev/pts/[0-9]' <<<"$out"
check "-ti: kubectl's terminal size reached it (33 rows, 77 columns)" grep -q '33 77$' <<<"$out"
out=$( (sleep 2; printf 'echo in-$((6*7))\n'; sleep 1; printf 'exit 7\n'; sleep 2) | script -qec "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG exec -ti shell -- sh" /dev/null 2>&1 | tr -d '\r'); rc=$?
check "-ti: an interactive shell ran a typed line (got: $out)" grep -q '^in-42$' <<<"$out"
check "-ti: and its typed exit code (7, got $rc)" test "$rc" = 7
out=$(KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false script -qec "stty rows 21 cols 99; $KUBECTL --kubeconfig $ADMIN_KUBECONFIG exec -ti shell -- stty size" /dev/null 2>&1 </dev/null | tr -d '\r')
check "SPDY -ti: the resize stream reached the terminal (21 99, got: $out)" grep -q '21 99$' <<<"$out"

# The API server's side of the contract: the verb, the node's authorization, the kubelet query.
NODE_KC=$TMP/api/node-node-a.kubeconfig
out=$("$KUBECTL" --kubeconfig "$NODE_KC" exec shell -- true 2>&1); rc=$?
check "the node's own credentials may not exec (rc=$rc)" bash -c "[ $rc -ne 0 ] && grep -qi 'forbidden' <<<'$out'"

# --- cubectl exec on the node ------------------------------------------------------------------
SOCK=$TMP/node-a/run/cubelet.sock
in_node 1 "$CUBECTL" --socket "$SOCK" exec default/shell -- sh -c 'echo out; echo err >&2; exit 3' >"$TMP/cout" 2>"$TMP/cerr"
rc=$?
check "cubectl exec exit code 3 (got $rc)" test "$rc" = 3
check "cubectl stdout" test "$(cat "$TMP/cout")" = out
check "cubectl stderr" test "$(cat "$TMP/cerr")" = "$(printf 'err\ncommand terminated with exit code 3')"
check "echo hi | cubectl exec -i ... cat" test "$(echo hi | in_node 1 "$CUBECTL" --socket "$SOCK" exec -i default/shell -- cat)" = hi
check "cubectl exec hostname" test "$(in_node 1 "$CUBECTL" --socket "$SOCK" exec default/shell -- hostname)" = shell
out=$(in_node 1 script -qec "stty rows 11 cols 22; $CUBECTL --socket $SOCK exec -ti default/shell -- sh -c 'tty; stty size; exit 6'" /dev/null 2>&1 </dev/null | tr -d '\r'); rc=$?
check "cubectl exec -ti: exit code 6 (got $rc: $out)" test "$rc" = 6
check "cubectl exec -ti: a terminal of the container, sized as ours (11 22)" bash -c "grep -q '/dev/pts/[0-9]' <<<'$out' && grep -q '11 22\$' <<<'$out'"
check "cubectl exec -c second" test "$(in_node 1 "$CUBECTL" --socket "$SOCK" exec default/two -c second -- hostname)" = two
out=$(in_node 1 "$CUBECTL" --socket "$SOCK" exec default/shell -c nope -- true 2>&1); rc=$?
check "cubectl exec missing container: error (rc=$rc: $out)" bash -c "[ $rc = 1 ] && grep -q 'container not found (\"nope\")' <<<'$out'"
out=$(in_node 1 "$CUBECTL" --socket "$SOCK" exec default/two -- true 2>&1); rc=$?
check "cubectl exec asks for -c with two containers (rc=$rc: $out)" bash -c "[ $rc = 1 ] && grep -q 'has 2 containers' <<<'$out'"

k delete pod shell two --wait=false >/dev/null
wait_for 60 "pods deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
