#!/usr/bin/env bash
# Installs dependencies, builds, and runs cubelet against the test control plane with one demo pod
# (busybox httpd) and a ClusterIP service, all inside network namespaces of its own so the host's
# network is untouched. Ctrl-C stops everything and cleans up.
#
#   sudo ./scripts/demo.sh
#
# While it runs, in another shell (the control plane lives in the netns "cubelet-demo"):
#   sudo ip netns exec cubelet-demo kubectl --kubeconfig /tmp/cubelet-demo/api/admin.kubeconfig get nodes,pods,svc -o wide
#   sudo ip netns exec cubelet-demo kubectl --kubeconfig /tmp/cubelet-demo/api/admin.kubeconfig logs demo
#   sudo ./build/agent/cubectl --socket /tmp/cubelet-demo/node-a/run/cubelet.sock pods
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "the demo needs root (namespaces, cgroups): sudo $0" >&2; exit 1; fi
./scripts/install-deps.sh
./scripts/build.sh
export E2E_BUILD_DIR=$PWD/${BUILD_DIR:-build}
exec ./tests/e2e/demo_run.sh
