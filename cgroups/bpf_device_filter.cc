#include "cgroups/bpf_device_filter.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cgroups/cgroup_dir.h"
#include "cgroups/parse.h"

namespace cgroups {
namespace {

// Registers: r1 = context on entry; r2 = device type, r3 = requested access, r4 = major,
// r5 = minor, r6 = scratch, r0 = return value.
constexpr uint8_t kCtx = 1, kType = 2, kAccess = 3, kMajor = 4, kMinor = 5, kTmp = 6, kRet = 0;

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i;
  std::memset(&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn LoadU32(uint8_t dst, uint8_t src, int16_t off) {
  return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}
bpf_insn Alu32Imm(uint8_t op, uint8_t dst, int32_t imm) {
  return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn Mov32Reg(uint8_t dst, uint8_t src) {
  return Insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
}
bpf_insn Mov64Imm(uint8_t dst, int32_t imm) {
  return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
bpf_insn JumpImm(uint8_t op, uint8_t dst, int32_t imm) {
  return Insn(BPF_JMP | op | BPF_K, dst, 0, 0 /* patched */, imm);
}
bpf_insn Exit() { return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

int32_t AccessBits(const std::string& access) {
  int32_t bits = 0;
  for (char c : access) {
    if (c == 'm') bits |= BPF_DEVCG_ACC_MKNOD;
    if (c == 'r') bits |= BPF_DEVCG_ACC_READ;
    if (c == 'w') bits |= BPF_DEVCG_ACC_WRITE;
  }
  return bits;
}
constexpr int32_t kAllAccess = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

long Bpf(int cmd, bpf_attr* attr) { return ::syscall(SYS_bpf, cmd, attr, sizeof *attr); }

Result<> Detach(int cgroup_fd, const std::string& cgroup_path, uint32_t id) {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.prog_id = id;
  base::UniqueFd prog(static_cast<int>(Bpf(BPF_PROG_GET_FD_BY_ID, &attr)));
  if (!prog) {
    if (errno == ENOENT) return {};  // already gone
    return SysFail("get device program " + std::to_string(id) + " of cgroup '" + cgroup_path + "'",
                   errno);
  }
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog.get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (Bpf(BPF_PROG_DETACH, &attr) != 0 && errno != ENOENT) {
    return SysFail(
        "detach device program " + std::to_string(id) + " from cgroup '" + cgroup_path + "'",
        errno);
  }
  return {};
}

}  // namespace

std::vector<bpf_insn> CompileDeviceFilter(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> p;
  p.push_back(LoadU32(kType, kCtx, offsetof(bpf_cgroup_dev_ctx, access_type)));
  p.push_back(Alu32Imm(BPF_AND, kType, 0xffff));
  p.push_back(LoadU32(kAccess, kCtx, offsetof(bpf_cgroup_dev_ctx, access_type)));
  p.push_back(Alu32Imm(BPF_RSH, kAccess, 16));
  p.push_back(LoadU32(kMajor, kCtx, offsetof(bpf_cgroup_dev_ctx, major)));
  p.push_back(LoadU32(kMinor, kCtx, offsetof(bpf_cgroup_dev_ctx, minor)));

  bool unconditional_exit = false;
  for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
    const DeviceRule& r = *it;
    int32_t bits = AccessBits(r.access);
    if (bits == 0) continue;    // grants or denies nothing
    std::vector<size_t> jumps;  // indexes of jumps to the end of this block
    if (r.type == 'c' || r.type == 'b') {
      jumps.push_back(p.size());
      p.push_back(
          JumpImm(BPF_JNE, kType, r.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
    }
    if (r.allow && bits != kAllAccess) {
      // Requested access must be a subset: (access & ~bits) == 0.
      p.push_back(Mov32Reg(kTmp, kAccess));
      p.push_back(Alu32Imm(BPF_AND, kTmp, ~bits & kAllAccess));
      jumps.push_back(p.size());
      p.push_back(JumpImm(BPF_JNE, kTmp, 0));
    } else if (!r.allow && bits != kAllAccess) {
      // Any overlap denies: (access & bits) != 0.
      p.push_back(Mov32Reg(kTmp, kAccess));
      p.push_back(Alu32Imm(BPF_AND, kTmp, bits));
      jumps.push_back(p.size());
      p.push_back(JumpImm(BPF_JEQ, kTmp, 0));
    }
    if (r.major >= 0) {
      jumps.push_back(p.size());
      p.push_back(JumpImm(BPF_JNE, kMajor, static_cast<int32_t>(r.major)));
    }
    if (r.minor >= 0) {
      jumps.push_back(p.size());
      p.push_back(JumpImm(BPF_JNE, kMinor, static_cast<int32_t>(r.minor)));
    }
    p.push_back(Mov64Imm(kRet, r.allow ? 1 : 0));
    p.push_back(Exit());
    for (size_t j : jumps) p[j].off = static_cast<int16_t>(p.size() - (j + 1));
    if (jumps.empty()) {
      // Matches everything: earlier rules can never be reached, and the verifier rejects
      // unreachable instructions, so stop here.
      unconditional_exit = true;
      break;
    }
  }
  if (!unconditional_exit) {
    p.push_back(Mov64Imm(kRet, 0));
    p.push_back(Exit());
  }
  return p;
}

Result<base::UniqueFd> LoadDeviceFilter(const std::vector<bpf_insn>& program) {
  static const char kLicense[] = "GPL";
  auto load = [&](char* log, uint32_t log_size) {
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = reinterpret_cast<uint64_t>(program.data());
    attr.insn_cnt = static_cast<uint32_t>(program.size());
    attr.license = reinterpret_cast<uint64_t>(kLicense);
    if (log) {
      attr.log_buf = reinterpret_cast<uint64_t>(log);
      attr.log_size = log_size;
      attr.log_level = 1;
    }
    return static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  };
  int fd = load(nullptr, 0);
  if (fd >= 0) return base::UniqueFd(fd);
  int err = errno;
  // Again with the verifier log, so the error says why.
  std::string log(64 * 1024, '\0');
  fd = load(log.data(), static_cast<uint32_t>(log.size()));
  if (fd >= 0) return base::UniqueFd(fd);
  log.resize(std::strlen(log.c_str()));
  std::string ctx = "load BPF device program (" + std::to_string(program.size()) + " insns)";
  if (err == EPERM) ctx += " (needs CAP_SYS_ADMIN or CAP_BPF)";
  if (!log.empty()) ctx += "; verifier: " + log.substr(0, 2000);
  return SysFail(ctx, err);
}

Result<std::vector<uint32_t>> QueryDeviceFilters(int cgroup_fd, const std::string& cgroup_path) {
  std::vector<uint32_t> ids(64);
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = reinterpret_cast<uint64_t>(ids.data());
  attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
  if (Bpf(BPF_PROG_QUERY, &attr) != 0)
    return SysFail("query device programs of cgroup '" + cgroup_path + "'", errno);
  ids.resize(std::min<size_t>(attr.query.prog_cnt, ids.size()));
  return ids;
}

Result<> SetDeviceFilter(int cgroup_fd, const std::string& cgroup_path,
                         const std::vector<DeviceRule>& rules) {
  auto old = QueryDeviceFilters(cgroup_fd, cgroup_path);
  if (!old) return tl::unexpected(old.error());
  auto prog = LoadDeviceFilter(CompileDeviceFilter(rules));
  if (!prog)
    return tl::unexpected(prog.error().Wrap("device rules for cgroup '" + cgroup_path + "'"));
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog->get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (Bpf(BPF_PROG_ATTACH, &attr) != 0) {
    std::string ctx = "attach BPF device program to cgroup '" + cgroup_path + "'";
    if (errno == EPERM)
      ctx += " (a program attached without BPF_F_ALLOW_MULTI here or above forbids it?)";
    return SysFail(ctx, errno);
  }
  // The attached program holds its own reference; our fd can close now.
  for (uint32_t id : *old) CUBELET_TRY(Detach(cgroup_fd, cgroup_path, id));
  return {};
}

Result<> ClearDeviceFilters(int cgroup_fd, const std::string& cgroup_path) {
  auto old = QueryDeviceFilters(cgroup_fd, cgroup_path);
  if (!old) return tl::unexpected(old.error());
  for (uint32_t id : *old) CUBELET_TRY(Detach(cgroup_fd, cgroup_path, id));
  return {};
}

}  // namespace cgroups
