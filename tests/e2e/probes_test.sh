#!/usr/bin/env bash
# End to end: container probes and lifecycle hooks on a real cubelet node, as an operator sees
# them through the API. A readiness httpGet probe gates Ready (and the EndpointSlice) and takes it
# away again when the probed file disappears; a failing liveness exec probe gets the container
# killed and restarted with the kubelet's events; a startup probe holds readiness back; postStart
# hooks run right after the start and a failing one kills the container; a server in another pod
# sees the probe and hook requests (path, Host, User-Agent, headers), preStop included.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

start_apiserver --node node-a || exit 1
start_node 1 node-a
wait_for 30 "node-a registered and Ready" node_ready

jp() { k get pod "$1" -o jsonpath="$2" 2>/dev/null; }
cond() { jp "$1" "{.status.conditions[?(@.type==\"$2\")].status}"; }
# events_for POD: "reason|message" lines of the pod's events.
events_for() {
  k get events -o json 2>/dev/null |
    jq -r --arg p "$1" '.items[] | select(.involvedObject.name==$p) | "\(.reason)|\(.message)"'
}
has_event() { events_for "$1" | grep -qF -- "$2"; }

cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: ready-web, namespace: default, labels: {app: ready-web}}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "httpd -p 8080 -h /www; sleep 8; echo ok > /www/ready.html; sleep 15; rm /www/ready.html; sleep 1000"]
    ports: [{containerPort: 8080, name: http}]
    readinessProbe:
      httpGet: {path: /ready.html, port: http, httpHeaders: [{name: X-Probe, value: e2e}]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      tcpSocket: {port: 8080}
      initialDelaySeconds: 2  # the first probe would otherwise race httpd's listen
      periodSeconds: 2
      failureThreshold: 3
---
apiVersion: v1
kind: Service
metadata: {name: ready-web, namespace: default}
spec:
  selector: {app: ready-web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: live-exec, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 1000"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: hooks-ok, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1000"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo from-poststart > /tmp/poststart"]}
    readinessProbe:
      exec: {command: ["grep", "-q", "from-poststart", "/tmp/poststart"]}
      periodSeconds: 2
---
apiVersion: v1
kind: Pod
metadata: {name: hooks-fail, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1000"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo hook-broke >&2; exit 7"]}
YAML

# --- readiness httpGet: NotReady, then Ready once the file is served, then NotReady again ---
phase_is() { [ "$(jp "$1" '{.status.phase}')" = "$2" ]; }
cond_is() { [ "$(cond "$1" "$2")" = "$3" ]; }
restarts_at_least() { [ "$(jp "$1" '{.status.containerStatuses[0].restartCount}')" -ge "$2" ] 2>/dev/null; }
slice_ready() {  # the ready flags of the service's endpoints, "true" / "false"
  k get endpointslices -l kubernetes.io/service-name="$1" -o json 2>/dev/null |
    jq -r '[.items[].endpoints[]? | .conditions.ready] | map(tostring) | join(",")'
}
slice_ready_is() { [ "$(slice_ready "$1")" = "$2" ]; }

wait_for 60 "ready-web Running" phase_is ready-web Running
check "ready-web not Ready while /ready.html is missing" cond_is ready-web Ready False
check "container ready=false, started=true" test "$(jp ready-web '{.status.containerStatuses[0].ready}/{.status.containerStatuses[0].started}')" = false/true
check "Ready=False reason ContainersNotReady" test "$(jp ready-web '{.status.conditions[?(@.type=="Ready")].reason}')" = ContainersNotReady
wait_for 20 "readiness failure event (404)" has_event ready-web "Unhealthy|Readiness probe failed: HTTP probe failed with statuscode: 404"
IP=$(jp ready-web '{.status.podIP}')
wait_for 30 "ready-web becomes Ready once the probe passes" cond_is ready-web Ready True
check "ContainersReady True, container ready" test "$(cond ready-web ContainersReady)/$(jp ready-web '{.status.containerStatuses[0].ready}')" = True/true
check "the file really is served on the pod IP" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://$IP:8080/ready.html | grep -q ok"
wait_for 20 "EndpointSlice endpoint ready" slice_ready_is ready-web true
wait_for 40 "ready-web NotReady again after the file is removed" cond_is ready-web Ready False
check "container ready=false again" test "$(jp ready-web '{.status.containerStatuses[0].ready}')" = false
wait_for 20 "EndpointSlice endpoint not ready" slice_ready_is ready-web false
check "readiness failure does not restart (restartCount 0)" test "$(jp ready-web '{.status.containerStatuses[0].restartCount}')" = 0
no_event() { ! events_for "$1" | grep -qF -- "$2"; }
check "tcpSocket liveness passes (no Liveness event)" no_event ready-web Liveness

# --- liveness exec: killed and restarted, with the kubelet's events --------------------------
wait_for 60 "live-exec restartCount grows" restarts_at_least live-exec 1
check "Unhealthy event: Liveness probe failed" has_event live-exec "Unhealthy|Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
check "Killing event: failed liveness probe, will be restarted" has_event live-exec "Killing|Container main failed liveness probe, will be restarted"
check "lastState terminated by a signal" test "$(jp live-exec '{.status.containerStatuses[0].lastState.terminated.exitCode}')" -ge 128
wait_for 40 "and killed again once the new container's file goes (restartCount >= 2)" restarts_at_least live-exec 2

# --- startup probe: started and ready only after it passes ------------------------------------
started_ready_is() { [ "$(jp "$1" '{.status.containerStatuses[0].started}/{.status.containerStatuses[0].ready}')" = "$2" ]; }
# Created only now, so that its 8 s of start-up are observed from the beginning.
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: slow-start, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 8; touch /tmp/started; sleep 1000"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 60
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 5
YAML
wait_for 60 "slow-start Running" phase_is slow-start Running
T_RUNNING=$SECONDS
check "slow-start: started=false, ready=false while the startup probe fails" started_ready_is slow-start false/false
wait_for 30 "slow-start started and ready after the startup probe passes" started_ready_is slow-start true/true
check "readiness waited for the startup probe (>= 3 s after Running)" test $((SECONDS - T_RUNNING)) -ge 3
check "slow-start Ready condition True" cond_is slow-start Ready True
check "startup probe failures are Unhealthy events" has_event slow-start "Unhealthy|Startup probe failed: "
check "slow-start not restarted" test "$(jp slow-start '{.status.containerStatuses[0].restartCount}')" = 0

# --- postStart hooks ---------------------------------------------------------------------------
waiting_reason_matches() { jp "$1" '{.status.containerStatuses[0].state.waiting.reason}' | grep -qE "$2"; }
wait_for 40 "hooks-ok Ready (its readiness probe reads the file postStart wrote)" cond_is hooks-ok Ready True
check "hooks-ok not restarted" test "$(jp hooks-ok '{.status.containerStatuses[0].restartCount}')" = 0
wait_for 40 "hooks-fail: FailedPostStartHook event" has_event hooks-fail "FailedPostStartHook|PostStartHook failed"
check "hooks-fail: Killing FailedPostStartHook event" has_event hooks-fail "Killing|FailedPostStartHook"
wait_for 40 "hooks-fail: container restarted" restarts_at_least hooks-fail 1
check "hooks-fail never Ready" test "$(cond hooks-fail Ready)" != True
wait_for 40 "hooks-fail waiting: PostStartHookError or CrashLoopBackOff" waiting_reason_matches hooks-fail 'PostStartHookError|CrashLoopBackOff'
check "cubelet logged the hook error with the kubelet's message" grep -qF 'Exec lifecycle hook ([sh -c echo hook-broke >&2; exit 7]) for Container' "$TMP/node-a/cubelet.log"

# --- the requests themselves, as a server in another pod sees them ----------------------------
# "sink" prints every request it gets (busybox nc) to its log; "hooked" points its readiness
# probe and its postStart / preStop hooks there (httpGet with host).
cat <<'YAML' | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: sink, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 2
  containers:
  - name: nc
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n' | nc -l -p 8080; done"]
YAML
wait_for 60 "sink Running" phase_is sink Running
SINK_IP=$(jp sink '{.status.podIP}')
sleep 1
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: hooked, namespace: default}
spec:
  nodeName: node-a
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1000"]
    readinessProbe:
      httpGet: {host: "$SINK_IP", port: 8080, path: /readiness-from-hooked, httpHeaders: [{name: x-probe, value: e2e}]}
      periodSeconds: 3
    lifecycle:
      postStart:
        httpGet: {host: "$SINK_IP", port: 8080, path: /poststart-from-hooked}
      preStop:
        httpGet: {host: "$SINK_IP", port: 8080, path: /prestop-from-hooked}
YAML
sink_saw() { k logs sink 2>/dev/null | grep -qF -- "$1"; }
wait_for 60 "hooked Ready (readiness httpGet to another pod's IP)" cond_is hooked Ready True
wait_for 10 "postStart httpGet reached the sink" sink_saw "GET /poststart-from-hooked HTTP/1.1"
wait_for 10 "with User-Agent kube-lifecycle/1.32" sink_saw "User-Agent: kube-lifecycle/1.32"
wait_for 10 "readiness request reached the sink" sink_saw "GET /readiness-from-hooked HTTP/1.1"
wait_for 10 "with User-Agent kube-probe/1.32" sink_saw "User-Agent: kube-probe/1.32"
wait_for 10 "with the probe's header, canonicalized" sink_saw "X-Probe: e2e"
wait_for 10 "Host is the target address" sink_saw "Host: $SINK_IP:8080"
k delete pod hooked --wait=false >/dev/null
wait_for 30 "preStop httpGet reached the sink on deletion" sink_saw "GET /prestop-from-hooked HTTP/1.1"
wait_for 30 "hooked deleted" bash -c "! $KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod hooked >/dev/null 2>&1"

# --- pods go away cleanly -------------------------------------------------------------------
k delete pod ready-web live-exec slow-start hooks-ok hooks-fail sink --wait=false >/dev/null
wait_for 60 "all pods deleted" bash -c "[ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pods -o name)\" ]"
wait_for 20 "no pod cgroups left" bash -c "[ -z \"\$(ls -d /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/*/pod* /sys/fs/cgroup/memory/$CGROUP_ROOT/node-a/kubepods/pod* 2>/dev/null)\" ]"
