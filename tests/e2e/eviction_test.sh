#!/usr/bin/env bash
# End to end: the kubelet failing pods itself. activeDeadlineSeconds ends a pod with
# DeadlineExceeded; node-pressure eviction (--eviction-hard): a node restarted with a
# memory.available threshold above the machine's memory is under MemoryPressure at once, reports
# it on the Node, refuses new BestEffort pods at admission, and evicts the running pods one per
# 10 s cycle in the kubelet's order (usage above requests first), each Failed with reason Evicted,
# the kubelet's message and a DisruptionTarget condition.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

one_node


cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: deadline, namespace: default}
spec:
  nodeName: node-a
  activeDeadlineSeconds: 4
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox:e2e, imagePullPolicy: IfNotPresent, command: ["sleep", "100000"]}
---
apiVersion: v1
kind: Pod
metadata: {name: besteffort, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox:e2e, imagePullPolicy: IfNotPresent, command: ["sleep", "100000"]}
---
apiVersion: v1
kind: Pod
metadata: {name: guaranteed, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sleep", "100017"]
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {cpu: 50m, memory: 64Mi}
YAML
for p in deadline besteffort guaranteed; do
  wait_pod 60 $p '{.status.phase}' Running
done
wait_pod 20 deadline '{.status.phase}' Failed
check "reason DeadlineExceeded" test "$(pod_field deadline '{.status.reason}')" = DeadlineExceeded
check "the kubelet's message" test "$(pod_field deadline '{.status.message}')" = "Pod was active on the node longer than the specified deadline"
check "its container was killed" bash -c "[ -n \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod deadline -o jsonpath='{.status.containerStatuses[0].state.terminated}')\" ]"
check "no MemoryPressure before" test "$(k get node node-a -o jsonpath='{.status.conditions[?(@.type=="MemoryPressure")].status}')" = False

# Restart the node with a threshold no machine meets: memory.available is always below it.
total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
stop_node 1
NODE_ARGS_1=$(printf '%q ' "--eviction-hard=memory.available<$((total_kb / 1024 + 1024))Mi")
run_cubelet 1
wait_for 30 "the node reports MemoryPressure" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get node node-a -o jsonpath='{.status.conditions[?(@.type==\"MemoryPressure\")].status}')\" = True ]"
check "MemoryPressure reason" test "$(k get node node-a -o jsonpath='{.status.conditions[?(@.type=="MemoryPressure")].reason}')" = KubeletHasInsufficientMemory

wait_pod 40 besteffort '{.status.phase}' Failed
check "... while the Guaranteed pod still runs" test "$(pod_field guaranteed '{.status.phase}')" = Running
check "reason Evicted" test "$(pod_field besteffort '{.status.reason}')" = Evicted
msg=$(pod_field besteffort '{.status.message}')
check "the kubelet's message ($msg)" bash -c "grep -q '^The node was low on resource: memory. Threshold quantity: [0-9]*[KMG]i, available: [0-9]*[KMG]\?i\?. ' <<<'$msg'"
check "DisruptionTarget TerminationByKubelet" test "$(pod_field besteffort '{.status.conditions[?(@.type=="DisruptionTarget")].reason}')" = TerminationByKubelet
check "an Evicted event" bash -c "$KUBECTL --kubeconfig $ADMIN_KUBECONFIG get events --field-selector involvedObject.name=besteffort -o jsonpath='{.items[*].reason}' | grep -qw Evicted"

# Admission: a new BestEffort pod is refused while the node is under memory pressure.
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: late, namespace: default}
spec:
  nodeName: node-a
  containers:
  - {name: app, image: busybox:e2e, imagePullPolicy: IfNotPresent, command: ["sleep", "100000"]}
YAML
wait_pod 20 late '{.status.phase}' Failed
check "refused with Evicted" test "$(pod_field late '{.status.reason}')" = Evicted
check "refused: the node had condition" test "$(pod_field late '{.status.message}')" = "The node had condition: [MemoryPressure]. "
check "a refused pod never ran a container" test -z "$(pod_field late '{.status.containerStatuses[*].state.running}')"

wait_pod 40 guaranteed '{.status.reason}' Evicted
wait_for 10 "its container is gone from the node" bash -c "! pgrep -f '^sleep 100017\$' >/dev/null"

# Soft thresholds: evict once met for their grace period, with a pod grace period of
# min(--eviction-max-pod-grace-period, terminationGracePeriodSeconds).
stop_node 1
NODE_ARGS_1=$(printf '%q ' "--eviction-hard=memory.available<1Mi" \
  "--eviction-soft=memory.available<$((total_kb / 1024 + 1024))Mi" \
  "--eviction-soft-grace-period=memory.available=5s" "--eviction-max-pod-grace-period=2")
run_cubelet 1
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: soft, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.2; done"]
    resources: {requests: {memory: 1Mi}}
YAML
wait_pod 60 soft '{.status.reason}' Evicted
check "soft eviction: the kubelet's message" bash -c "grep -q '^The node was low on resource: memory. ' <<<'$(pod_field soft '{.status.message}')'"
check "soft eviction: the container got its TERM (exit 0 within the 2 s grace)" test "$(pod_field soft '{.status.containerStatuses[0].state.terminated.exitCode}')" = 0

k delete pod deadline besteffort guaranteed late soft --wait=false >/dev/null
wait_for 60 "pods deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
