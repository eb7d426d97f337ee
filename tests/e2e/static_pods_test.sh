#!/usr/bin/env bash
# End to end: static pods from --pod-manifest-path, mirrored in the API as the kubelet does
# (name <name>-<node>, kubernetes.io/config.mirror = config.hash, the Node as controller owner),
# with kubectl exec/logs through the mirror; a deleted mirror comes back without restarting the
# pod; a changed manifest is a new pod; a cubelet restart keeps it running; a removed manifest
# stops it and deletes its mirror.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup

MAN=$TMP/manifests
mkdir -p "$MAN"
one_node --pod-manifest-path "$MAN"

field() { k get pod web-node-a -o jsonpath="$1" 2>/dev/null; }
cat >"$MAN/web.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: static-web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo static says hi; exec sleep 100023"]
YAML
wait_pod 40 web-node-a '{.status.phase}' Running
hash=$(field '{.metadata.annotations.kubernetes\.io/config\.hash}')
check "config.mirror is the static pod's hash ($hash)" test -n "$hash" -a "$(field '{.metadata.annotations.kubernetes\.io/config\.mirror}')" = "$hash"
check "config.source is file" test "$(field '{.metadata.annotations.kubernetes\.io/config\.source}')" = file
check "the Node owns the mirror" test "$(field '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}')" = "Node/node-a/true"
check "the Node's uid in the owner reference" test "$(field '{.metadata.ownerReferences[0].uid}')" = "$(k get node node-a -o jsonpath='{.metadata.uid}')"
check "kubectl exec through the mirror" test "$(k exec web-node-a -- hostname)" = web-node-a
check "kubectl logs through the mirror" test "$(k logs web-node-a)" = "static says hi"
cid=$(field '{.status.containerStatuses[0].containerID}')
check "a container ID is reported" test -n "$cid"

# A deleted mirror pod is made again; the static pod keeps running.
old_uid=$(field '{.metadata.uid}')
k delete pod web-node-a --wait=false >/dev/null
wait_for 30 "a new mirror pod appears" bash -c "u=\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-node-a -o jsonpath='{.metadata.uid}' 2>/dev/null); [ -n \"\$u\" ] && [ \"\$u\" != $old_uid ] && [ -z \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-node-a -o jsonpath='{.metadata.deletionTimestamp}')\" ]"
wait_for 20 "the new mirror shows the same running container" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-node-a -o jsonpath='{.status.containerStatuses[0].containerID}')\" = $cid ]"

# A cubelet restart adopts the running static pod.
stop_node 1
run_cubelet 1
wait_for 30 "node Ready after the restart" node_ready
sleep 3
check "still the same container after the restart" test "$(field '{.status.containerStatuses[0].containerID}')" = "$cid"
check "not restarted" test "$(field '{.status.containerStatuses[0].restartCount}')" = 0

# A changed manifest is a new pod (new hash); the old container stops.
sed -i 's/sleep 100023/sleep 100024/' "$MAN/web.yaml"
wait_for 40 "the mirror follows the new manifest" bash -c "h=\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-node-a -o jsonpath='{.metadata.annotations.kubernetes\.io/config\.mirror}' 2>/dev/null); [ -n \"\$h\" ] && [ \"\$h\" != $hash ]"
wait_for 30 "the new version runs" bash -c "pgrep -f '^sleep 100024\$' >/dev/null && ! pgrep -f '^sleep 100023\$' >/dev/null"
wait_pod 30 web-node-a '{.status.phase}' Running

# Removing the manifest stops the pod and deletes the mirror.
rm "$MAN/web.yaml"
wait_for 40 "the mirror pod is deleted" bash -c "! $KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod web-node-a >/dev/null 2>&1"
wait_for 20 "the container is gone" bash -c "! pgrep -f '^sleep 10002[34]\$' >/dev/null"
