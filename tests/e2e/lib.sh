# Shared helpers for cubelet's end-to-end tests (sourced by the test scripts).
#
# Topology: the test re-executes itself in a fresh network namespace (the "LAN"), so nothing it
# does reaches the host's links, routes or iptables. On the LAN a bridge holds 10.123.0.1, where
# the test API server listens. Each cubelet "node" runs in a network namespace of its own
# (/run/netns/cbt<PID>n<I>), plugged into the LAN bridge with a veth at 10.123.0.(10+I); the API
# server reaches its kubelet API there. Only the network namespace is switched (nsenter --net):
# `ip netns exec` would remount /sys and hide the cgroup hierarchies.
# Cgroups live under a parent named after the test (cubelet-test-e2e-<PID>), removed at exit;
# leftovers of crashed runs (dead PID) are removed at start.
set -uo pipefail

E2E_BUILD_DIR=${E2E_BUILD_DIR:?set E2E_BUILD_DIR to the CMake build directory}
CUBELET=$E2E_BUILD_DIR/agent/cubelet
CUBECTL=$E2E_BUILD_DIR/agent/cubectl
APISERVER=$E2E_BUILD_DIR/tests/apiserver/cubelet-test-apiserver
IMPORT=$E2E_BUILD_DIR/bin/cubelet-image-import
MONITOR=$E2E_BUILD_DIR/bin/cubelet-monitor
KUBECTL=${KUBECTL:-/usr/bin/kubectl}

FAILS=0
log() { printf '%s %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$*" >&2; }
fail() { log "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { log "ok: $*"; }
check() {  # check "description" command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# wait_for SECONDS "description" command... — polls every 0.2 s.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    if "$@" >/dev/null 2>&1; then pass "$what"; return 0; fi
    sleep 0.2
  done
  fail "$what (not within ${secs}s)"
  return 1
}

# Enter a fresh network namespace once (the script re-execs itself).
e2e_enter_netns() {
  if [ "$(id -u)" != 0 ]; then echo "e2e tests need root; skipping"; exit 77; fi
  if [ -z "${CUBELET_E2E_IN_NETNS:-}" ]; then
    export CUBELET_E2E_IN_NETNS=1
    exec unshare --net -- "$0" "$@"
  fi
  ip link set lo up
}

E2E_ID=$$
TMP=""
NODE_PIDS=()
API_PID=""

e2e_cleanup_stale() {
  # Test directories of earlier runs whose test process is gone (killed: no teardown ran):
  # their mounts (pod volumes, pinned namespaces) go, and the directory unless E2E_KEEP kept it.
  for d in /tmp/cubelet-e2e.*; do
    [ -d "$d" ] || continue
    owner=$(cat "$d/.owner" 2>/dev/null)
    if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
    # Without an owner file (older runs): only once it is an hour old.
    if [ -z "$owner" ] && [ -z "$(find "$d" -maxdepth 0 -mmin +60)" ]; then continue; fi
    grep -o " $d[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    [ -e "$d/.keep" ] || rm -rf "$d"
  done
  # Network namespaces and cgroups of earlier runs whose test process is gone.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cbt[0-9]+n[0-9]+$'); do
    pid=${ns#cbt}; pid=${pid%n*}
    if ! kill -0 "$pid" 2>/dev/null; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  for h in /sys/fs/cgroup/*/; do
    for d in "$h"cubelet-test-e2e-*; do
      [ -d "$d" ] || continue
      pid=${d##*-}
      kill -0 "$pid" 2>/dev/null && continue
      e2e_remove_cgroup_tree "$d"
    done
  done
}

e2e_remove_cgroup_tree() {
  local d=$1
  [ -d "$d" ] || return 0
  [ -f "$d/freezer.state" ] && echo THAWED > "$d/freezer.state" 2>/dev/null
  find "$d" -depth -type d | while read -r c; do
    [ -f "$c/freezer.state" ] && echo THAWED > "$c/freezer.state" 2>/dev/null
    for p in $(cat "$c/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  for i in $(seq 1 50); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$d" ] || return 0
    sleep 0.1
  done
}

e2e_setup() {
  e2e_cleanup_stale
  TMP=$(mktemp -d /tmp/cubelet-e2e.XXXXXX)
  chmod 755 "$TMP"
  echo $$ >"$TMP/.owner"
  [ -z "${E2E_KEEP:-}" ] || touch "$TMP/.keep"
  trap e2e_teardown EXIT
  ip link add cbtlan type bridge
  ip addr add 10.123.0.1/24 dev cbtlan
  ip link set cbtlan up
  echo 1 > /proc/sys/net/ipv4/ip_forward
  CGROUP_ROOT=cubelet-test-e2e-$E2E_ID
  # A busybox image, as the tests' image store would hold it.
  local rootfs=$TMP/busybox-rootfs
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www" "$rootfs/tmp" "$rootfs/root"
  cp /bin/busybox "$rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  echo "served by busybox httpd" > "$rootfs/www/index.html"
  BUSYBOX_ROOTFS=$rootfs
}

# start_apiserver [--node NAME]...
start_apiserver() {
  mkdir -p "$TMP/api"
  "$APISERVER" --listen 10.123.0.1:6443 --data-dir "$TMP/api" --cluster-cidr 10.244.0.0/16 \
    --service-cidr 10.96.0.0/16 --bookmark-interval-ms 2000 "$@" >"$TMP/api.out" 2>"$TMP/api.log" &
  API_PID=$!
  wait_for 20 "test API server ready" grep -q '^ready' "$TMP/api.out" || return 1
  ADMIN_KUBECONFIG=$TMP/api/admin.kubeconfig
}

k() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
# node_ready [NAME] — the Node (default node-a) reports Ready=True.
# pod_field POD JSONPATH: a field of a pod in the default namespace ("" when absent).
pod_field() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" get pod "$1" -o jsonpath="$2" 2>/dev/null; }
# wait_pod SECONDS POD JSONPATH VALUE: waits until the field has the value.
wait_pod() {
  local secs=$1 pod=$2 path=$3 want=$4
  wait_for "$secs" "pod $pod: $path = $want" bash -c "[ \"\$(\"$KUBECTL\" --kubeconfig '$ADMIN_KUBECONFIG' get pod '$pod' -o jsonpath='$path' 2>/dev/null)\" = '$want' ]"
}

# one_node [cubelet flags...]: the test API server and node-a, registered and Ready.
one_node() {
  start_apiserver --node node-a || exit 1
  start_node 1 node-a "$@"
  wait_for 30 "node-a registered and Ready" node_ready
}

node_ready() {
  [ "$(k get node "${1:-node-a}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# start_node INDEX NAME [extra cubelet flags...]
start_node() {
  local i=$1 name=$2; shift 2
  local ns=cbt${E2E_ID}n$i ip=10.123.0.$((10 + i))
  ip netns add "$ns"
  ip link add "cbt${i}h" type veth peer name "cbt${i}n"
  ip link set "cbt${i}h" master cbtlan up
  ip link set "cbt${i}n" netns "$ns"
  nsenter --net=/run/netns/$ns ip link set lo up
  nsenter --net=/run/netns/$ns ip link set "cbt${i}n" name eth0
  nsenter --net=/run/netns/$ns ip addr add "$ip/24" dev eth0
  nsenter --net=/run/netns/$ns ip link set eth0 up
  nsenter --net=/run/netns/$ns ip route add default via 10.123.0.1
  local dir=$TMP/$name
  mkdir -p "$dir/root" "$dir/run" "$dir/logs"
  "$IMPORT" --store "$dir/root/images" --rootfs "$BUSYBOX_ROOTFS" --name docker.io/library/busybox:e2e \
    --cmd sh >/dev/null || fail "image import for $name"
  eval "NODE_NS_$i=$ns"
  eval "NODE_NAME_$i=$name"
  if [ $# -gt 0 ]; then eval "NODE_ARGS_$i=\$(printf '%q ' \"\$@\")"; else eval "NODE_ARGS_$i="; fi
  run_cubelet "$i"
}

# (Re)starts node I's cubelet with the flags given to start_node; the log is appended to.
run_cubelet() {
  local i=$1
  local v="NODE_NS_$i" n="NODE_NAME_$i" a="NODE_ARGS_$i"
  local ns=${!v} name=${!n} ip=10.123.0.$((10 + i))
  local dir=$TMP/$name
  eval "local extra=(${!a})"
  nsenter --net=/run/netns/$ns "$CUBELET" --kubeconfig "$TMP/api/node-$name.kubeconfig" \
    --hostname-override "$name" --node-ip "$ip" --root-dir "$dir/root" --run-dir "$dir/run" \
    --pod-logs-dir "$dir/logs" --cgroup-root "$CGROUP_ROOT/$name" --client-ca-file "$TMP/api/ca.crt" \
    --cluster-cidr 10.244.0.0/16 --resolv-conf /dev/null --healthz-port 0 \
    --monitor-path "$MONITOR" --node-status-update-frequency 2 "${extra[@]}" >>"$dir/cubelet.log" 2>&1 &
  NODE_PIDS[$i]=$!
}

node_ns() { local v="NODE_NS_$1"; echo "/run/netns/${!v}"; }
in_node() { local n=$1; shift; nsenter --net="$(node_ns "$n")" "$@"; }

stop_node() {
  local i=$1
  local pid=${NODE_PIDS[$i]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  NODE_PIDS[$i]=""
}

# Makes the test's own ("LAN") network namespace reachable as /run/netns/NAME, so another shell can
# use the control plane: sudo ip netns exec NAME kubectl ...
LAN_NETNS=""
pin_lan_netns() {
  LAN_NETNS=$1
  mkdir -p /run/netns
  ip netns del "$LAN_NETNS" 2>/dev/null
  touch "/run/netns/$LAN_NETNS"
  mount --bind /proc/self/ns/net "/run/netns/$LAN_NETNS"
}

e2e_teardown() {
  local rc=$?
  if [ -n "$LAN_NETNS" ]; then umount "/run/netns/$LAN_NETNS" 2>/dev/null; rm -f "/run/netns/$LAN_NETNS"; fi
  for i in "${!NODE_PIDS[@]}"; do stop_node "$i"; done
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
  # Everything the nodes started (monitors, containers) lives in their netns or cgroups.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^cbt${E2E_ID}n[0-9]+$"); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  for h in /sys/fs/cgroup/*/; do e2e_remove_cgroup_tree "${h}cubelet-test-e2e-$E2E_ID"; done
  # Mounts the nodes left under the test dir (a failure case) must not keep it busy.
  if [ -n "$TMP" ]; then
    grep -o " $TMP[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^cbt${E2E_ID}n[0-9]+$"); do ip netns del "$ns"; done
    if [ "$FAILS" -gt 0 ] || [ "$rc" -ne 0 ]; then
      for f in "$TMP"/*/cubelet.log "$TMP/api.log"; do
        [ -f "$f" ] && { echo "==== $f (last 60 lines)"; tail -n 60 "$f"; } >&2
      done
    fi
    [ -n "${E2E_KEEP:-}" ] || rm -rf "$TMP"
  fi
  if [ "$FAILS" -gt 0 ]; then log "$FAILS check(s) failed"; exit 1; fi
  exit "$rc"
}
