#!/usr/bin/env bash
# Installs every Debian 12 package cubelet's build, tests and benchmarks need.
# Idempotent; safe to re-run. kubectl is expected at /usr/bin/kubectl (do NOT install
# Debian's kubernetes-client here: it conflicts with the preinstalled one).
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git curl ca-certificates openssl
  libboost-dev libboost-system-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev catch2
  libspdlog-dev libfmt-dev libcli11-dev libexpected-dev
  libseccomp-dev libcgroup-dev libnl-3-dev libnl-route-3-dev
  zlib1g-dev
  iptables libip4tc-dev libxtables-dev nftables libnftables-dev libnftnl-dev libmnl-dev
  libnetfilter-conntrack-dev conntrack iproute2 util-linux procps psmisc
  busybox-static docker-registry skopeo umoci containernetworking-plugins runc crun
  jq hyperfine python3
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# docker-registry's package starts a system service on :5000 bound to all addresses;
# the tests run their own registry on 127.0.0.1 with their own config, so stop the packaged one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
echo "install-deps: all packages present"
