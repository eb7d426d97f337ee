#include "runtime/monitor/spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace monitor {
namespace {

// Iterates `key=value` lines.
template <class F>
void ForEachLine(std::string_view text, F f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      f(line, std::string_view());
    } else {
      f(line.substr(0, eq), line.substr(eq + 1));
    }
  }
}

void Put(std::string& out, std::string_view key, std::string_view value) {
  out.append(key);
  out.push_back('=');
  out.append(Escape(value));
  out.push_back('\n');
}

void PutNum(std::string& out, std::string_view key, long long v) {
  Put(out, key, std::to_string(v));
}

void PutU(std::string& out, std::string_view key, unsigned long long v) {
  Put(out, key, std::to_string(v));
}

bool ToLL(std::string_view s, long long* out) {
  if (s.empty() || s.size() > 24) return false;
  char buf[32];
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  char* end = nullptr;
  errno = 0;
  long long v = strtoll(buf, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

bool ToULL(std::string_view s, unsigned long long* out) {
  if (s.empty() || s.size() > 24) return false;
  char buf[32];
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(buf, &end, 0);
  if (errno || *end) return false;
  *out = v;
  return true;
}

std::vector<std::string_view> SplitTabs(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    size_t t = s.find('\t');
    out.push_back(s.substr(0, t));
    if (t == std::string_view::npos) break;
    s = s.substr(t + 1);
  }
  return out;
}

}  // namespace

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\' || i + 1 == s.size()) {
      out.push_back(c);
      continue;
    }
    char n = s[++i];
    switch (n) {
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case '0': out.push_back('\0'); break;
      default: out.push_back(n);
    }
  }
  return out;
}

std::string EncodeSpec(const ContainerSpec& s) {
  std::string o;
  Put(o, "version", "1");
  Put(o, "id", s.id);
  Put(o, "name", s.name);
  Put(o, "rootfs", s.rootfs);
  Put(o, "lower", s.lower);
  if (!s.lower_base.empty()) Put(o, "lower_base", s.lower_base);
  Put(o, "upper", s.upper);
  Put(o, "work", s.work);
  if (s.overlay_volatile) PutNum(o, "overlay_volatile", 1);
  PutNum(o, "readonly_rootfs", s.readonly_rootfs);
  Put(o, "netns", s.netns);
  Put(o, "ipcns", s.ipcns);
  Put(o, "utsns", s.utsns);
  PutNum(o, "host_pid", s.host_pid);
  for (const auto& m : s.mounts) {
    // Fields are escaped first so that the separating tabs are unambiguous.
    std::string v = Escape(m.source) + "\t" + Escape(m.destination) + "\t" + Escape(m.type) +
                    "\t" + (m.readonly ? "ro" : "rw") + "\t" + (m.recursive ? "rbind" : "bind");
    Put(o, "mount", v);
  }
  for (const auto& p : s.masked_paths) Put(o, "masked", p);
  for (const auto& p : s.readonly_paths) Put(o, "readonly", p);
  for (const auto& a : s.args) Put(o, "arg", a);
  for (const auto& e : s.env) Put(o, "env", e);
  Put(o, "cwd", s.cwd);
  PutU(o, "uid", s.uid);
  PutU(o, "gid", s.gid);
  for (uint32_t g : s.groups) PutU(o, "group", g);
  PutU(o, "capabilities", s.capabilities);
  PutNum(o, "no_new_privs", s.no_new_privs);
  Put(o, "seccomp_bpf", s.seccomp_bpf);
  if (s.has_oom_score_adj) PutNum(o, "oom_score_adj", s.oom_score_adj);
  Put(o, "log_path", s.log_path);
  Put(o, "oom_counter", s.oom_counter);
  PutNum(o, "privileged", s.privileged);
  for (const auto& p : s.cgroup_procs) Put(o, "cgroup_procs", p);
  for (const auto& r : s.rlimits) {
    Put(o, "rlimit", std::to_string(r.resource) + "\t" + std::to_string(r.soft) + "\t" +
                         std::to_string(r.hard));
  }
  return o;
}

bool DecodeSpec(std::string_view text, ContainerSpec* out, std::string* error) {
  ContainerSpec s;
  bool ok = true;
  std::string bad;
  auto fail = [&](std::string_view key) {
    if (ok) bad = std::string(key);
    ok = false;
  };
  auto flag = [&](std::string_view k, std::string_view v, bool* b) {
    long long n;
    if (!ToLL(v, &n)) return fail(k);
    *b = n != 0;
  };
  auto u32 = [&](std::string_view k, std::string_view v, uint32_t* u) {
    unsigned long long n;
    if (!ToULL(v, &n) || n > 0xffffffffull) return fail(k);
    *u = static_cast<uint32_t>(n);
  };
  bool versioned = false;
  ForEachLine(text, [&](std::string_view k, std::string_view raw) {
    std::string v = Unescape(raw);
    if (k == "version") versioned = v == "1";
    else if (k == "id") s.id = v;
    else if (k == "name") s.name = v;
    else if (k == "rootfs") s.rootfs = v;
    else if (k == "lower") s.lower = v;
    else if (k == "lower_base") s.lower_base = v;
    else if (k == "upper") s.upper = v;
    else if (k == "work") s.work = v;
    else if (k == "overlay_volatile") flag(k, v, &s.overlay_volatile);
    else if (k == "readonly_rootfs") flag(k, v, &s.readonly_rootfs);
    else if (k == "netns") s.netns = v;
    else if (k == "ipcns") s.ipcns = v;
    else if (k == "utsns") s.utsns = v;
    else if (k == "host_pid") flag(k, v, &s.host_pid);
    else if (k == "mount") {
      auto f = SplitTabs(v);
      if (f.size() != 5) return fail(k);
      MountSpec m;
      m.source = Unescape(f[0]);
      m.destination = Unescape(f[1]);
      m.type = Unescape(f[2]);
      m.readonly = f[3] == "ro";
      m.recursive = f[4] == "rbind";
      s.mounts.push_back(std::move(m));
    } else if (k == "masked") s.masked_paths.push_back(v);
    else if (k == "readonly") s.readonly_paths.push_back(v);
    else if (k == "arg") s.args.push_back(v);
    else if (k == "env") s.env.push_back(v);
    else if (k == "cwd") s.cwd = v;
    else if (k == "uid") u32(k, v, &s.uid);
    else if (k == "gid") u32(k, v, &s.gid);
    else if (k == "group") {
      uint32_t g = 0;
      u32(k, v, &g);
      s.groups.push_back(g);
    } else if (k == "capabilities") {
      unsigned long long n;
      if (!ToULL(v, &n)) return fail(k);
      s.capabilities = n;
    } else if (k == "no_new_privs") flag(k, v, &s.no_new_privs);
    else if (k == "seccomp_bpf") s.seccomp_bpf = v;
    else if (k == "oom_score_adj") {
      long long n;
      if (!ToLL(v, &n)) return fail(k);
      s.has_oom_score_adj = true;
      s.oom_score_adj = static_cast<int>(n);
    } else if (k == "log_path") s.log_path = v;
    else if (k == "oom_counter") s.oom_counter = v;
    else if (k == "privileged") flag(k, v, &s.privileged);
    else if (k == "cgroup_procs") s.cgroup_procs.push_back(v);
    else if (k == "rlimit") {
      auto f = SplitTabs(v);
      long long res;
      unsigned long long soft, hard;
      if (f.size() != 3 || !ToLL(f[0], &res) || !ToULL(f[1], &soft) || !ToULL(f[2], &hard))
        return fail(k);
      s.rlimits.push_back({static_cast<int>(res), soft, hard});
    }
    // Unknown keys are ignored so that an older monitor can read a newer spec.
  });
  if (!versioned) {
    if (error) *error = "spec: missing or unsupported version";
    return false;
  }
  if (!ok) {
    if (error) *error = "spec: bad value for key '" + bad + "'";
    return false;
  }
  if (s.args.empty()) {
    if (error) *error = "spec: no process arguments";
    return false;
  }
  *out = std::move(s);
  return true;
}

std::string EncodeStart(const StartRecord& r) {
  std::string o;
  PutNum(o, "init_pid", r.init_pid);
  PutU(o, "init_start_ticks", r.init_start_ticks);
  PutNum(o, "monitor_pid", r.monitor_pid);
  PutU(o, "monitor_start_ticks", r.monitor_start_ticks);
  PutNum(o, "started_at_ns", r.started_at_ns);
  return o;
}

bool DecodeStart(std::string_view text, StartRecord* out) {
  StartRecord r;
  bool ok = true;
  int seen = 0;
  ForEachLine(text, [&](std::string_view k, std::string_view v) {
    long long n;
    unsigned long long u;
    if (k == "init_pid" && ToLL(v, &n)) r.init_pid = static_cast<int>(n), ++seen;
    else if (k == "init_start_ticks" && ToULL(v, &u)) r.init_start_ticks = u;
    else if (k == "monitor_pid" && ToLL(v, &n)) r.monitor_pid = static_cast<int>(n), ++seen;
    else if (k == "monitor_start_ticks" && ToULL(v, &u)) r.monitor_start_ticks = u;
    else if (k == "started_at_ns" && ToLL(v, &n)) r.started_at_ns = n;
    else if (k == "init_pid" || k == "monitor_pid") ok = false;
  });
  if (!ok || seen != 2) return false;
  *out = r;
  return true;
}

std::string EncodeExit(const ExitRecord& r) {
  std::string o;
  PutNum(o, "exit_code", r.exit_code);
  PutNum(o, "signal", r.signal);
  PutNum(o, "finished_at_ns", r.finished_at_ns);
  PutNum(o, "oom_killed", r.oom_killed);
  Put(o, "reason", r.reason);
  Put(o, "message", r.message);
  return o;
}

bool DecodeExit(std::string_view text, ExitRecord* out) {
  ExitRecord r;
  bool have_code = false;
  ForEachLine(text, [&](std::string_view k, std::string_view v) {
    long long n;
    if (k == "exit_code" && ToLL(v, &n)) r.exit_code = static_cast<int>(n), have_code = true;
    else if (k == "signal" && ToLL(v, &n)) r.signal = static_cast<int>(n);
    else if (k == "finished_at_ns" && ToLL(v, &n)) r.finished_at_ns = n;
    else if (k == "oom_killed" && ToLL(v, &n)) r.oom_killed = n != 0;
    else if (k == "reason") r.reason = Unescape(v);
    else if (k == "message") r.message = Unescape(v);
  });
  if (!have_code) return false;
  *out = std::move(r);
  return true;
}

bool ReadWholeFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string data;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return false;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  *out = std::move(data);
  return true;
}

bool WriteFileAtomically(const std::string& path, std::string_view data, bool sync) {
  std::string tmp = path + ".tmp" + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      unlink(tmp.c_str());
      return false;
    }
    off += static_cast<size_t>(n);
  }
  if (sync) fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

uint64_t ProcessStartTicks(int pid) {
  std::string stat;
  if (pid <= 0 || !ReadWholeFile("/proc/" + std::to_string(pid) + "/stat", &stat)) return 0;
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  size_t rp = stat.rfind(')');
  if (rp == std::string::npos) return 0;
  std::string_view rest(stat);
  rest = rest.substr(rp + 2);  // field 3 onwards
  int field = 3;
  while (field < 22) {
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) return 0;
    rest = rest.substr(sp + 1);
    ++field;
  }
  unsigned long long v = 0;
  size_t sp = rest.find(' ');
  if (!ToULL(rest.substr(0, sp), &v)) return 0;
  return v;
}

int64_t NowUnixNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace monitor
