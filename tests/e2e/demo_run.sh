#!/usr/bin/env bash
# The demo behind scripts/demo.sh: one node, one pod, one service; stays up until Ctrl-C.
source "$(dirname "$0")/lib.sh"
e2e_enter_netns "$@"
e2e_setup
# A fixed, documented place instead of a random temp dir (the README points kubectl at it).
rm -rf /tmp/cubelet-demo; ln -s "$TMP" /tmp/cubelet-demo
pin_lan_netns cubelet-demo
start_apiserver --node node-a || exit 1
start_node 1 node-a
cat <<YAML | k apply -f -
apiVersion: v1
kind: Pod
metadata: {name: demo, namespace: default, labels: {app: demo}}
spec:
  nodeName: node-a
  containers:
  - name: httpd
    image: busybox:e2e
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from \$(hostname) > /www/index.html; echo serving on :8080; exec httpd -f -v -p 8080 -h /www"]
    ports: [{containerPort: 8080, name: http}]
    resources: {limits: {cpu: 200m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default}
spec:
  selector: {app: demo}
  ports: [{port: 80, targetPort: http}]
YAML
wait_for 60 "demo pod Running" bash -c "[ \"\$($KUBECTL --kubeconfig $ADMIN_KUBECONFIG get pod demo -o jsonpath='{.status.phase}')\" = Running ]"
k get nodes -o wide; k get pods -o wide; k get svc demo
SVC_IP=$(k get svc demo -o jsonpath='{.spec.clusterIP}')
wait_for 30 "service $SVC_IP answers" bash -c "nsenter --net=$(node_ns 1) curl -s --max-time 2 http://$SVC_IP/ | grep -q hello"
echo "curl http://$SVC_IP/ from node-a: $(in_node 1 curl -s --max-time 2 http://$SVC_IP/)"
"$CUBECTL" --socket "$TMP/node-a/run/cubelet.sock" pods
cat <<TXT

cubelet is running (logs: /tmp/cubelet-demo/node-a/cubelet.log). The control plane lives in the
network namespace "cubelet-demo"; try, in another shell:
  sudo ip netns exec cubelet-demo kubectl --kubeconfig /tmp/cubelet-demo/api/admin.kubeconfig get pods -o wide
  sudo ip netns exec cubelet-demo kubectl --kubeconfig /tmp/cubelet-demo/api/admin.kubeconfig logs demo
  sudo $CUBECTL --socket /tmp/cubelet-demo/node-a/run/cubelet.sock pods
Press Ctrl-C to stop and clean up.
TXT
trap 'exit 0' INT TERM
while kill -0 "${NODE_PIDS[1]}" 2>/dev/null; do sleep 1; done
echo "cubelet exited; see /tmp/cubelet-demo/node-a/cubelet.log" >&2
exit 1
