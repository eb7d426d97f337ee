#!/usr/bin/env bash
# cubelet restarts (crash and graceful) must not restart pods: containers belong to their
# monitors, are re-adopted, and an exit that happened while cubelet was down is reported with its
# real exit code.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup
start_apiserver --node node-a || exit 1
start_node 1 node-a
wait_for 30 "node-a Ready" node_ready

cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: steady, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo up; exec sleep 100000"]
---
apiVersion: v1
kind: Pod
metadata: {name: exits-later, namespace: default}
spec:
  nodeName: node-a
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo waiting; while [ ! -e /tmp/go ]; do sleep 0.2; done; exit 7"]
YAML
running() { [ "$(k get pod "$1" -o jsonpath='{.status.phase}')" = Running ]; }
wait_for 60 "steady Running" running steady
wait_for 60 "exits-later Running" running exits-later
CID=$(k get pod steady -o jsonpath='{.status.containerStatuses[0].containerID}')
UID_S=$(k get pod steady -o jsonpath='{.metadata.uid}')
PID=$(cat /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/besteffort/pod$UID_S/*/cgroup.procs 2>/dev/null | head -1)
check "steady has a container process" test -n "$PID"
UID_E=$(k get pod exits-later -o jsonpath='{.metadata.uid}')
EPID=$(cat /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/besteffort/pod$UID_E/*/cgroup.procs 2>/dev/null | head -1)

# 1. Crash: kill -9. The containers keep running; one exits while cubelet is down.
kill -9 "${NODE_PIDS[1]}"; wait "${NODE_PIDS[1]}" 2>/dev/null
sleep 1
check "container survives a cubelet crash" kill -0 "$PID"
touch "/proc/$EPID/root/tmp/go" 2>/dev/null || fail "could not signal exits-later"
wait_for 10 "exits-later's process ends while cubelet is down" bash -c "! kill -0 $EPID 2>/dev/null"
run_cubelet 1
wait_for 30 "exit while down reported: exitCode 7" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod exits-later -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')\" = 7 ]"
check "exits-later Failed" test "$(k get pod exits-later -o jsonpath='{.status.phase}')" = Failed
sleep 3
check "steady not restarted (same containerID)" test "$(k get pod steady -o jsonpath='{.status.containerStatuses[0].containerID}')" = "$CID"
check "steady restartCount 0" test "$(k get pod steady -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 0
check "steady same process" kill -0 "$PID"
check "re-adopted: still Running" running steady

# 2. Graceful stop (SIGTERM, as systemd does with KillMode=process): pods keep running.
stop_node 1
check "container survives a graceful cubelet stop" kill -0 "$PID"
run_cubelet 1
sleep 4
check "steady still the same container after the restart" test "$(k get pod steady -o jsonpath='{.status.containerStatuses[0].containerID}')" = "$CID"
wait_for 20 "logs still served after restart" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG logs steady | grep -q up"

# 3. The re-adopted container is stopped properly on deletion.
k delete pod steady exits-later --wait=false >/dev/null
wait_for 40 "pods deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
check "the adopted process is gone" bash -c "! kill -0 $PID 2>/dev/null"
wait_for 20 "no pod cgroups left" bash -c "[ -z \"\$(ls -d /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/*/pod* 2>/dev/null)\" ]"
