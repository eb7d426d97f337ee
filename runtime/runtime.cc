#include "runtime/runtime.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <set>
#include <tuple>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"
#include "runtime/image_ref.h"
#include <openssl/evp.h>

#ifndef CUBELET_MONITOR_PATH
#define CUBELET_MONITOR_PATH ""
#endif

namespace runtime {
namespace {

// Overlayfs needs a kernel module and an upper filesystem that supports it (not overlayfs
// itself, e.g. when cubelet runs inside a container): try a real mount once, with "volatile"
// (Linux 5.10+) and without. Returns {usable, volatile}.
std::pair<bool, bool> ProbeOverlay(const std::string& root) {
  std::string d = root + "/.overlay-probe";
  auto attempt = [&](const char* extra) {
    (void)base::RemoveAll(d);
    for (auto sub : {"/l", "/u", "/w", "/m"}) {
      if (!base::MkdirAll(d + sub)) return false;
    }
    std::string opts = "lowerdir=" + d + "/l,upperdir=" + d + "/u,workdir=" + d + "/w" + extra;
    bool ok = mount("overlay", (d + "/m").c_str(), "overlay", 0, opts.c_str()) == 0;
    if (ok) umount2((d + "/m").c_str(), MNT_DETACH);
    return ok;
  };
  std::pair<bool, bool> out{false, false};
  if (attempt(",volatile")) out = {true, true};
  else if (attempt("")) out = {true, false};
  (void)base::RemoveAll(d);
  return out;
}

}  // namespace

std::string FindMonitorBinary() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    std::string exe(buf, static_cast<size_t>(n));
    std::string dir = exe.substr(0, exe.rfind('/'));
    for (const auto& c : {dir + "/cubelet-monitor", dir + "/../bin/cubelet-monitor",
                          dir + "/../libexec/cubelet/cubelet-monitor"}) {
      if (access(c.c_str(), X_OK) == 0) return c;
    }
  }
  std::string built = CUBELET_MONITOR_PATH;
  if (!built.empty() && access(built.c_str(), X_OK) == 0) return built;
  return "/usr/libexec/cubelet/cubelet-monitor";
}

Runtime::Runtime(RuntimeOptions opts) : opts_(std::move(opts)) {}

Runtime::~Runtime() {
  // Containers keep running (their monitors do not depend on us); a new Runtime re-adopts them.
  monitors_.reset();
  tasks_.reset();  // before dirs_, which its tasks use
  dirs_.reset();
  watcher_.reset();
}

Result<std::unique_ptr<Runtime>> Runtime::Create(RuntimeOptions options) {
  if (!options.cgroups) return base::Fail("runtime: a cgroup driver is required");
  if (options.image_dir.empty()) options.image_dir = options.root_dir + "/images";
  if (options.monitor_path.empty()) options.monitor_path = FindMonitorBinary();
  if (access(options.monitor_path.c_str(), X_OK) != 0) {
    return base::Errno("runtime: monitor binary '" + options.monitor_path + "'");
  }
  // A write to a pipe of a monitor that just died must be an error, not a process kill.
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<Runtime> rt(new Runtime(std::move(options)));
  CUBELET_TRY(rt->Init());
  return rt;
}

Result<> Runtime::Init() {
  for (const auto& d : {opts_.root_dir + "/sandboxes", opts_.root_dir + "/containers"}) {
    CUBELET_TRY_CTX(base::MkdirAll(d, 0700), "runtime state directory");
  }
  // Container directories spread over ext4's block groups (see ContainerDirPool, which makes
  // most of them): each one's writable layer and overlay work files then allocate inodes
  // where few were freed lately.
  base::SpreadSubdirectories(opts_.root_dir + "/containers");
  for (const auto& d : {opts_.run_dir + "/netns", opts_.run_dir + "/ipcns", opts_.run_dir + "/utsns",
                        opts_.run_dir + "/shm", opts_.run_dir + "/containers"}) {
    CUBELET_TRY_CTX(base::MkdirAll(d, 0755), "runtime run directory");
  }
  auto store = ImageStore::Open(opts_.image_dir);
  if (!store) return tl::unexpected(store.error());
  images_ = std::move(*store);
  if (!opts_.disable_overlay) std::tie(overlay_, overlay_volatile_) = ProbeOverlay(opts_.root_dir);
  else overlay_ = false;
  if (!overlay_) {
    base::log::Warn("overlayfs is not usable here; containers get a private copy of the image "
                    "rootfs (slower to create, more disk)",
                    {{"root_dir", opts_.root_dir}});
  }
  monitors_ = std::make_unique<MonitorPool>(opts_.monitor_path, opts_.spare_monitors);
  // Next to containers/ (same filesystem: entries are renamed there).
  dirs_ = std::make_unique<ContainerDirPool>(opts_.root_dir + "/container-pool",
                                             overlay_ ? opts_.spare_container_dirs : 0);
  watcher_ = std::make_unique<ExitWatcher>([this](const std::string& id) { OnMonitorExit(id); });
  Adopt();
  if (opts_.network) {
    // Whatever the network still holds for sandboxes that no longer exist (a crash between
    // Setup and saving the sandbox, or state removed by hand) is released now.
    std::set<std::string> live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, sb] : sandboxes_) live.insert(id);
    }
    auto gc = opts_.network->GarbageCollect(live);
    if (!gc) {
      base::log::Warn("pod network garbage collection failed", {{"error", gc.error().message}});
    } else if (*gc > 0) {
      base::log::Info("released the pod network of vanished sandboxes", {{"count", *gc}});
    }
  }
  return {};
}

std::string Runtime::SandboxDir(const std::string& id) const {
  return opts_.root_dir + "/sandboxes/" + id;
}

std::string Runtime::ContainerDir(const std::string& id) const {
  return opts_.root_dir + "/containers/" + id;
}

std::string Runtime::ContainerStateDir(const std::string& id) const {
  return opts_.run_dir + "/containers/" + id;
}

void Runtime::Adopt() {
  for (const auto& id : base::ListDir(opts_.root_dir + "/sandboxes")) {
    auto text = base::ReadFile(SandboxDir(id) + "/sandbox.json");
    if (!text) continue;  // crashed half-way through RunPodSandbox: RemovePodSandbox cleans it
    auto rec = DecodeSandboxRecord(*text);
    if (!rec) {
      base::log::Warn("unreadable sandbox state", {{"id", id}, {"error", rec.error().message}});
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    sandboxes_[id] = Sandbox{*rec};
  }
  std::vector<std::pair<std::string, monitor::StartRecord>> to_watch;
  for (const auto& id : base::ListDir(opts_.root_dir + "/containers")) {
    std::string dir = ContainerDir(id);
    auto text = base::ReadFile(dir + "/container.json");
    if (!text) {
      // A crash during CreateContainer, before the record was written: nobody knows the id.
      if (!base::PathExists(dir + "/container.json")) {
        base::log::Info("removing the directory of a container never created", {{"id", id}});
        (void)base::RemoveAll(dir);
        (void)base::RemoveAll(ContainerStateDir(id));
      }
      continue;
    }
    auto rec = DecodeContainerRecord(*text);
    if (!rec) {
      base::log::Warn("unreadable container state", {{"id", id}, {"error", rec.error().message}});
      continue;
    }
    // The monitor's files are on the run directory; containers created before that layout
    // (an upgrade with containers running) keep them beside container.json.
    std::string state_dir = ContainerStateDir(id);
    bool lost = false;
    if (!base::PathExists(state_dir)) {
      if (base::PathExists(dir + "/spec")) {
        state_dir = dir;
      } else {
        lost = true;  // the node restarted: the run directory is empty
        (void)base::MkdirAll(state_dir, 0755);
      }
    }
    Container c{*rec, std::nullopt, std::nullopt, false, dir, state_dir, false, nullptr};
    std::string s;
    if (monitor::ReadWholeFile(state_dir + "/spec", &s)) {
      c.self_join = s.find("\ncgroup_procs=") != std::string::npos;
    }
    monitor::StartRecord sr;
    if (monitor::ReadWholeFile(state_dir + "/started", &s) && monitor::DecodeStart(s, &sr)) {
      c.start = sr;
    }
    std::lock_guard<std::mutex> lock(mu_);
    LoadExitLocked(c);
    if (lost && !c.exit) {
      // Nothing of it runs any more (its processes, cgroups and namespaces went with the
      // reboot) and it cannot be started: report it exited, as containerd does.
      monitor::ExitRecord er;
      er.exit_code = 255;
      er.finished_at_ns = base::ToUnixNanos(std::chrono::system_clock::now());
      er.reason = "Unknown";
      er.message = "the node restarted; the container's runtime state is gone";
      monitor::WriteFileAtomically(state_dir + "/exit", monitor::EncodeExit(er));
      c.exit = er;
    }
    if (c.start && !c.exit) to_watch.emplace_back(id, *c.start);
    containers_[id] = std::move(c);
  }
  // Run-directory state of containers whose record never made it to disk (a crash during
  // CreateContainer).
  for (const auto& id : base::ListDir(opts_.run_dir + "/containers")) {
    if (!base::PathExists(ContainerDir(id) + "/container.json")) {
      (void)base::RemoveAll(ContainerStateDir(id));
    }
  }
  for (const auto& [id, sr] : to_watch) {
    auto pidfd = OpenPidFd(sr.monitor_pid, sr.monitor_start_ticks);
    if (pidfd) {
      if (watcher_->Watch(id, std::move(*pidfd))) {
        base::log::Info("re-adopted running container",
                        {{"id", id}, {"pid", sr.init_pid}, {"monitor", sr.monitor_pid}});
        continue;
      }
    }
    // The monitor is gone: it either wrote the exit file just now or died without it.
    OnMonitorExit(id);
  }
}

bool Runtime::LoadExitLocked(Container& c) {
  if (c.exit) return true;
  std::string s;
  monitor::ExitRecord er;
  if (monitor::ReadWholeFile(c.state_dir + "/exit", &s) && monitor::DecodeExit(s, &er)) {
    c.exit = er;
    return true;
  }
  return false;
}

void Runtime::OnMonitorExit(const std::string& id) {
  std::string sandbox_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return;
    Container& c = it->second;
    if (!LoadExitLocked(c)) {
      // The monitor died without recording an exit (killed, or crashed): the container's
      // process died with it or is unreachable. Record that, once, like containerd does.
      monitor::ExitRecord er;
      er.exit_code = 255;
      er.finished_at_ns = base::ToUnixNanos(std::chrono::system_clock::now());
      er.reason = "Unknown";
      er.message = "the container monitor exited without recording the exit status";
      monitor::WriteFileAtomically(c.state_dir + "/exit", monitor::EncodeExit(er));
      c.exit = er;
    }
    sandbox_id = c.rec.sandbox_id;
  }
  Emit(id, sandbox_id, cri::ContainerEvent::Type::kStopped);
}

void Runtime::Emit(const std::string& id, const std::string& sandbox_id,
                   cri::ContainerEvent::Type t) {
  std::function<void(const cri::ContainerEvent&)> h;
  {
    std::lock_guard<std::mutex> lock(handler_mu_);
    h = handler_;
  }
  if (!h) return;
  cri::ContainerEvent ev;
  ev.container_id = id;
  ev.pod_sandbox_id = sandbox_id;
  ev.type = t;
  ev.created_at = base::ToUnixNanos(std::chrono::system_clock::now());
  h(ev);
}

void Runtime::SetEventHandler(std::function<void(const cri::ContainerEvent&)> handler) {
  std::lock_guard<std::mutex> lock(handler_mu_);
  handler_ = std::move(handler);
}

cri::RuntimeStatus Runtime::Status() {
  cri::RuntimeStatus st;
  st.conditions.push_back({"RuntimeReady", true, "", ""});
  cri::RuntimeCondition net{"NetworkReady", true, "", ""};
  if (opts_.network) {
    net.status = opts_.network->Ready(&net.reason, &net.message);
  }
  st.conditions.push_back(net);
  return st;
}

cri::ContainerState Runtime::StateLocked(const Container& c) const {
  if (c.exit) return cri::ContainerState::kExited;
  if (c.start) return cri::ContainerState::kRunning;
  return cri::ContainerState::kCreated;
}

cri::Image Runtime::ToCriImage(const ImageRecord& r) const {
  cri::Image img;
  img.id = "sha256:" + r.id;
  img.repo_tags = r.repo_tags;
  img.repo_digests = r.repo_digests;
  img.size = r.size;
  const std::string& user = r.config.user;
  std::string u = user.substr(0, user.find(':'));
  if (!u.empty() && u.find_first_not_of("0123456789") == std::string::npos) {
    img.uid = std::stoll(u);
  } else if (!u.empty()) {
    img.username = u;
  }
  return img;
}

Result<> Runtime::RemoveImage(const std::string& ref) {
  std::set<std::string> in_use;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, c] : containers_) in_use.insert(c.rec.image_id);
  }
  return images_->Remove(ref, in_use);
}

Result<std::string> Runtime::PullImage(const std::string& ref, const cri::AuthConfig& auth) {
  auto parsed = ParseImageRef(ref);
  if (!parsed) return base::Fail(parsed.error().message, kErrInvalidImageName);
  RegistryAuth ra;
  ra.username = auth.username;
  ra.password = auth.password;
  if (!auth.auth.empty() && ra.username.empty()) {
    // "auth" is base64(user:pass) as in docker config files.
    std::string decoded(auth.auth.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                            reinterpret_cast<const unsigned char*>(auth.auth.data()),
                            static_cast<int>(auth.auth.size()));
    if (n > 0) {
      decoded.resize(static_cast<size_t>(n));
      decoded.erase(decoded.find_last_not_of('\0') + 1);
      ra.username = decoded.substr(0, decoded.find(':'));
      if (decoded.find(':') != std::string::npos) ra.password = decoded.substr(decoded.find(':') + 1);
    }
  }
  ra.identity_token = auth.identity_token;
  ra.registry_token = auth.registry_token;
  auto pulled = PullFromRegistry(*images_, ref, ra, opts_.registry);
  if (pulled) return pulled->repo_digest;
  if (auto found = images_->Find(ref)) {
    base::log::Warn("image pull failed; using the image in the store",
                    {{"image", ref}, {"error", pulled.error().message}});
    return found->repo_digests.empty() ? "sha256:" + found->id : found->repo_digests.front();
  }
  return base::Fail("failed to pull image \"" + ref + "\": " + pulled.error().message, kErrImagePull);
}

Result<cri::ContainerStats> Runtime::ContainerStats(const std::string& id) {
  cri::ContainerStats s;
  std::string cgroup, dir;
  bool measure = false;
  auto steady = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) {
      return base::Fail("container \"" + id + "\" not found", kErrNotFound);
    }
    s.id = id;
    s.metadata = it->second.rec.metadata;
    cgroup = it->second.rec.cgroup;
    const Container& c = it->second;
    measure = c.usage_unix_ns == 0 || steady - c.usage_at >= kWritableLayerUsagePeriod;
    s.writable_layer_timestamp = c.usage_unix_ns;
    s.writable_layer_bytes = c.usage_bytes;
    s.writable_layer_inodes = c.usage_inodes;
    dir = c.dir;
  }
  if (measure) {
    // The overlay's upper directory, or the private copy of the image on hosts without overlay.
    auto u = base::DirDiskUsage(base::PathExists(dir + "/upper") ? dir + "/upper"
                                                                 : dir + "/rootfs-copy");
    s.writable_layer_timestamp = base::ToUnixNanos(std::chrono::system_clock::now());
    s.writable_layer_bytes = u.bytes;
    s.writable_layer_inodes = u.inodes;
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = containers_.find(id); it != containers_.end()) {
      it->second.usage_at = steady;
      it->second.usage_unix_ns = s.writable_layer_timestamp;
      it->second.usage_bytes = u.bytes;
      it->second.usage_inodes = u.inodes;
    }
  }
  int64_t now = base::ToUnixNanos(std::chrono::system_clock::now());
  s.cpu.timestamp = s.memory.timestamp = now;
  if (opts_.cgroups->Exists(cgroup)) {
    auto st = opts_.cgroups->GetStats(cgroup);
    if (!st) return tl::unexpected(st.error().Wrap("stats of container " + id));
    s.cpu.usage_core_nano_seconds = st->cpu_usage_ns;
    s.memory.usage_bytes = st->memory_usage_bytes;
    s.memory.working_set_bytes = st->memory_working_set_bytes;
    s.memory.rss_bytes = st->memory_rss_bytes;
    s.pids = st->pids_current;
  }
  return s;
}

Result<cri::PodSandboxStats> Runtime::PodSandboxStats(const std::string& id) {
  std::string cgroup;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) return base::Fail("sandbox \"" + id + "\" not found", kErrNotFound);
    cgroup = it->second.rec.cgroup;
  }
  cri::PodSandboxStats s;
  s.id = id;
  s.cpu.timestamp = s.memory.timestamp = base::ToUnixNanos(std::chrono::system_clock::now());
  if (opts_.cgroups->Exists(cgroup)) {
    auto st = opts_.cgroups->GetStats(cgroup);
    if (!st) return tl::unexpected(st.error().Wrap("stats of sandbox " + id));
    s.cpu.usage_core_nano_seconds = st->cpu_usage_ns;
    s.memory.usage_bytes = st->memory_usage_bytes;
    s.memory.working_set_bytes = st->memory_working_set_bytes;
    s.memory.rss_bytes = st->memory_rss_bytes;
    s.pids = st->pids_current;
  }
  return s;
}

}  // namespace runtime
