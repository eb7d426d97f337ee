#include "runtime/network/node_rules.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "base/fd.h"
#include "base/scope_guard.h"
#include "base/strings.h"

extern char** environ;

namespace runtime::net {
namespace {

constexpr const char* kNatJumpComment = "cubelet: pod masquerade";
constexpr const char* kFilterJumpComment = "cubelet: pod forwarding";

std::string Quote(const char* s) { return std::string("\"") + s + "\""; }

}  // namespace

std::string RenderNodeRules(const NodeRulesConfig& c, bool add_nat_jump, bool add_filter_jump) {
  const std::string pod = c.pod_cidr.ToString();
  const std::string inside = (c.cluster_cidr ? *c.cluster_cidr : c.pod_cidr).ToString();
  std::string out;
  if (c.masquerade) {
    out += "*nat\n";
    out += std::string(":") + kPostroutingChain + " - [0:0]\n";
    out += std::string("-A ") + kPostroutingChain + " -s " + pod + " -d " + inside +
           " -m comment --comment \"cubelet: inside the cluster network, keep source\" -j RETURN\n";
    out += std::string("-A ") + kPostroutingChain + " -s " + pod +
           " -d 224.0.0.0/4 -m comment --comment \"cubelet: multicast, keep source\" -j RETURN\n";
    out += std::string("-A ") + kPostroutingChain + " -s " + pod +
           " -m comment --comment \"cubelet: pod leaving the cluster network\" -j MASQUERADE\n";
    if (add_nat_jump) {
      out += std::string("-I POSTROUTING -m comment --comment ") + Quote(kNatJumpComment) +
             " -j " + kPostroutingChain + "\n";
    }
    out += "COMMIT\n";
  }
  if (c.forward_accept) {
    out += "*filter\n";
    out += std::string(":") + kForwardChain + " - [0:0]\n";
    out += std::string("-A ") + kForwardChain + " -s " + pod +
           " -m comment --comment \"cubelet: from pods\" -j ACCEPT\n";
    out += std::string("-A ") + kForwardChain + " -d " + pod +
           " -m comment --comment \"cubelet: to pods\" -j ACCEPT\n";
    if (add_filter_jump) {
      out += std::string("-I FORWARD -m comment --comment ") + Quote(kFilterJumpComment) +
             " -j " + kForwardChain + "\n";
    }
    out += "COMMIT\n";
  }
  return out;
}

Result<int> RunProgram(const std::vector<std::string>& argv, const std::string& stdin_data,
                       std::string* output) {
  if (argv.empty()) return base::Fail("run: empty command", EINVAL);
  int in[2], out[2];
  // stdin is a socket so that writing to a program that exited early gives EPIPE (MSG_NOSIGNAL)
  // instead of a SIGPIPE that would kill cubelet.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    return base::Errno("run " + argv[0] + ": socketpair");
  }
  base::UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return base::Errno("run " + argv[0] + ": pipe");
  base::UniqueFd out_r(out[0]), out_w(out[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  auto fa_done = base::Defer([&] { posix_spawn_file_actions_destroy(&fa); });
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  auto attr_done = base::Defer([&] { posix_spawnattr_destroy(&attr); });
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(), environ);
  if (rc != 0) return base::Errno("run " + argv[0], rc);
  in_r.reset();
  out_w.reset();

  // The input is small (a few rules); write it all, then collect the output.
  const char* p = stdin_data.data();
  size_t left = stdin_data.size();
  while (left > 0) {
    ssize_t n = ::send(in_w.get(), p, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EPIPE: the program exited early; its status tells why
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  in_w.reset();
  std::string collected;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(out_r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    collected.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return base::Errno("run " + argv[0] + ": wait");
  }
  if (output) *output = std::move(collected);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

Result<> ApplyNodeRules(const NodeRulesConfig& c, const IptablesCommands& cmd) {
  if (!c.masquerade && !c.forward_accept) return {};
  // `-C` fails both when the jump is missing and when our chain does not exist yet; either way
  // the jump must be added.
  auto has_jump = [&](const char* table, const char* chain, const char* comment,
                      const char* target) -> Result<bool> {
    std::string out;
    auto rc = RunProgram({cmd.iptables, "-w", "-t", table, "-C", chain, "-m", "comment",
                          "--comment", comment, "-j", target},
                         "", &out);
    if (!rc) return tl::unexpected(rc.error());
    return *rc == 0;
  };
  bool nat_jump = false, filter_jump = false;
  if (c.masquerade) {
    auto h = has_jump("nat", "POSTROUTING", kNatJumpComment, kPostroutingChain);
    if (!h) return tl::unexpected(h.error().Wrap("check iptables jump to " +
                                                 std::string(kPostroutingChain)));
    nat_jump = !*h;
  }
  if (c.forward_accept) {
    auto h = has_jump("filter", "FORWARD", kFilterJumpComment, kForwardChain);
    if (!h) return tl::unexpected(h.error().Wrap("check iptables jump to " +
                                                 std::string(kForwardChain)));
    filter_jump = !*h;
  }
  std::string rules = RenderNodeRules(c, nat_jump, filter_jump);
  std::string out;
  auto rc = RunProgram({cmd.iptables_restore, "-w", "--noflush"}, rules, &out);
  if (!rc) return tl::unexpected(rc.error().Wrap("apply pod network iptables rules"));
  if (*rc != 0) {
    return base::Fail("apply pod network iptables rules: " + cmd.iptables_restore +
                      " exited with status " + std::to_string(*rc) + ": " +
                      std::string(base::Trim(out)));
  }
  return {};
}

}  // namespace runtime::net
