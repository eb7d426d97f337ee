// Catch2 main for tests labelled `privileged`: the whole process moves into a fresh network
// namespace (loopback up) before any test runs, so no test can touch the host's iptables,
// nftables, routes or links, and stale cgroups of crashed earlier runs are swept.
#define CATCH_CONFIG_RUNNER
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>

#include "tests/support/kernel_env.h"

static bool LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  close(s);
  return ok;
}

int main(int argc, char** argv) {
  if (!testsupport::IsPrivileged()) {
    fprintf(stderr, "privileged tests need root; skipping (exit 77)\n");
    return 77;  // CTest SKIP_RETURN_CODE
  }
  if (unshare(CLONE_NEWNET) != 0 || !LoopbackUp()) {
    perror("unshare(CLONE_NEWNET)");
    return 1;
  }
  testsupport::SweepStaleCgroups();
  return Catch::Session().run(argc, argv);
}
