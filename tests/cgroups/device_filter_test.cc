// The generated v2 device program is run here by a small interpreter of the eBPF subset it uses,
// against an independent statement of the rule semantics; the privileged v2 test then loads it
// into the real verifier and checks open() in a cgroup.
#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "cgroups/bpf_device_filter.h"

using namespace cgroups;

namespace {

struct Request {
  char type;  // 'c' or 'b'
  uint32_t major, minor;
  std::string access;  // subset of "rwm"
};

uint32_t Bits(const std::string& a) {
  uint32_t b = 0;
  for (char c : a)
    b |= c == 'm' ? BPF_DEVCG_ACC_MKNOD : c == 'r' ? BPF_DEVCG_ACC_READ : BPF_DEVCG_ACC_WRITE;
  return b;
}

// Runs the program; FAILs on anything outside the subset or on a backward/out-of-range jump.
int Run(const std::vector<bpf_insn>& prog, const Request& req) {
  bpf_cgroup_dev_ctx ctx{};
  ctx.access_type =
      (Bits(req.access) << 16) | (req.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK);
  ctx.major = req.major;
  ctx.minor = req.minor;
  uint64_t r[11] = {};
  bool init[11] = {};
  init[1] = true;  // r1 = ctx
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const bpf_insn& i = prog[pc];
    auto use = [&](int reg) {
      REQUIRE(init[reg]);
      return r[reg];
    };
    auto jump = [&](bool taken) {
      REQUIRE(i.off >= 0);
      if (taken) pc += i.off;
      REQUIRE(pc + 1 < prog.size());
    };
    switch (i.code) {
      case BPF_LDX | BPF_MEM | BPF_W: {
        REQUIRE(i.src_reg == 1);
        REQUIRE((i.off == 0 || i.off == 4 || i.off == 8));
        uint32_t v;
        std::memcpy(&v, reinterpret_cast<const char*>(&ctx) + i.off, 4);
        r[i.dst_reg] = v;
        init[i.dst_reg] = true;
        break;
      }
      case BPF_ALU | BPF_AND | BPF_K:
        r[i.dst_reg] = uint32_t(use(i.dst_reg) & uint32_t(i.imm));
        break;
      case BPF_ALU | BPF_RSH | BPF_K:
        r[i.dst_reg] = uint32_t(use(i.dst_reg)) >> i.imm;
        break;
      case BPF_ALU | BPF_MOV | BPF_X:
        r[i.dst_reg] = uint32_t(use(i.src_reg));
        init[i.dst_reg] = true;
        break;
      case BPF_ALU64 | BPF_MOV | BPF_K:
        r[i.dst_reg] = uint64_t(int64_t(i.imm));
        init[i.dst_reg] = true;
        break;
      case BPF_JMP | BPF_JNE | BPF_K:
        jump(use(i.dst_reg) != uint64_t(int64_t(i.imm)));
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        jump(use(i.dst_reg) == uint64_t(int64_t(i.imm)));
        break;
      case BPF_JMP | BPF_EXIT:
        return int(use(0));
      default:
        FAIL("unexpected opcode " << int(i.code) << " at " << pc);
    }
  }
  FAIL("fell off the end of the program");
  return -1;
}

// The semantics, stated independently: rules in order, the last matching one decides, default
// deny; an allow rule matches if the request is within its access, a deny rule if they overlap.
int Expected(const std::vector<DeviceRule>& rules, const Request& req) {
  int verdict = 0;
  for (const auto& rule : rules) {
    if (rule.type != 'a' && rule.type != req.type) continue;
    if (rule.major >= 0 && uint32_t(rule.major) != req.major) continue;
    if (rule.minor >= 0 && uint32_t(rule.minor) != req.minor) continue;
    uint32_t want = Bits(req.access), have = Bits(rule.access);
    if (have == 0) continue;
    bool match = rule.allow ? (want & ~have) == 0 : (want & have) != 0;
    if (match) verdict = rule.allow ? 1 : 0;
  }
  return verdict;
}

// Every instruction must be reachable (the kernel verifier rejects dead code).
void CheckAllReachable(const std::vector<bpf_insn>& prog) {
  std::set<size_t> seen;
  std::vector<size_t> todo{0};
  while (!todo.empty()) {
    size_t pc = todo.back();
    todo.pop_back();
    if (pc >= prog.size() || !seen.insert(pc).second) continue;
    const auto& i = prog[pc];
    if (i.code == (BPF_JMP | BPF_EXIT)) continue;
    todo.push_back(pc + 1);
    if ((i.code & 0x07) == BPF_JMP) todo.push_back(pc + 1 + i.off);
  }
  CHECK(seen.size() == prog.size());
}

const std::vector<Request>& Requests() {
  static const std::vector<Request> reqs = [] {
    std::vector<Request> out;
    for (char t : {'c', 'b'})
      for (uint32_t major : {1u, 5u, 8u, 136u})
        for (uint32_t minor : {0u, 3u, 5u, 9u})
          for (const char* a : {"r", "w", "m", "rw", "rwm", "wm"})
            out.push_back({t, major, minor, a});
    return out;
  }();
  return reqs;
}

}  // namespace

TEST_CASE("device filter: table of rule lists against the semantics", "[cgroups][unit]") {
  using R = DeviceRule;
  std::vector<std::vector<DeviceRule>> lists = {
      {},
      {R{true, 'c', 1, 3, "rwm"}},
      {R{true, 'c', 1, 3, "rwm"}, R{true, 'c', 1, 5, "r"}},
      {R{true, 'c', 1, -1, "rw"}, R{false, 'c', 1, 5, "w"}},
      {R{true, 'a', -1, -1, "rwm"}},
      {R{true, 'a', -1, -1, "rwm"}, R{false, 'c', 1, 5, "rwm"}},
      {R{true, 'c', 1, 3, "rwm"}, R{true, 'a', -1, -1, "rwm"}},  // allow-all last: all else dead
      {R{true, 'b', -1, -1, "m"}, R{true, 'c', -1, -1, "m"}, R{true, 'c', 136, -1, "rw"}},
      {R{false, 'a', -1, -1, "rwm"}},
      {R{true, 'c', 5, 0, ""}},  // grants nothing
  };
  for (size_t n = 0; n < lists.size(); ++n) {
    auto prog = CompileDeviceFilter(lists[n]);
    INFO("list #" << n << ", " << prog.size() << " insns");
    CheckAllReachable(prog);
    for (const auto& req : Requests()) {
      INFO(req.type << " " << req.major << ":" << req.minor << " " << req.access);
      CHECK(Run(prog, req) == Expected(lists[n], req));
    }
  }
}

TEST_CASE("device filter: the spot checks a reader expects", "[cgroups][unit]") {
  auto prog = CompileDeviceFilter({DeviceRule{true, 'c', 1, 3, "rwm"}});  // /dev/null only
  CHECK(Run(prog, {'c', 1, 3, "rw"}) == 1);
  CHECK(Run(prog, {'c', 1, 5, "r"}) == 0);  // /dev/zero
  CHECK(Run(prog, {'b', 1, 3, "r"}) == 0);  // a block device with the same numbers
  auto ro = CompileDeviceFilter({DeviceRule{true, 'c', 1, 5, "r"}});
  CHECK(Run(ro, {'c', 1, 5, "r"}) == 1);
  CHECK(Run(ro, {'c', 1, 5, "rw"}) == 0);  // write not granted
}
