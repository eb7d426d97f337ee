// Runtime: containers.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <thread>

#include "base/file.h"
#include "base/scope_guard.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"
#include "runtime/command.h"
#include "runtime/image_ref.h"
#include "runtime/layer.h"
#include "runtime/monitor_process.h"
#include "runtime/rootfs_mount.h"
#include "runtime/runtime.h"
#include "runtime/security.h"

namespace runtime {
namespace {

const char* const kMaskedPaths[] = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                    "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                                    "/sys/devices/virtual/powercap"};
const char* const kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"};

// The mount points the init would create in the rootfs itself (rootfs_mount.h): the sandbox's
// /etc files and the volumes, unless they lie on the init's own mounts (/dev, /proc, /sys) or
// inside another volume (created there after that volume is mounted), or are not plain paths.
std::vector<MountPoint> PreparableMountPoints(const cri::ContainerConfig& c) {
  std::vector<MountPoint> out;
  std::vector<std::string> dests;
  for (const auto& m : c.mounts) dests.push_back(m.container_path);
  auto plain = [](const std::string& p) {
    return p.size() > 1 && p[0] == '/' && p.back() != '/' && p.find("//") == std::string::npos &&
           p.find("/./") == std::string::npos && p.find("/../") == std::string::npos &&
           !base::EndsWith(p, "/.") && !base::EndsWith(p, "/..");
  };
  auto own_mount = [&](const std::string& p) {
    for (const char* top : {"/dev", "/proc", "/sys"}) {
      if (p == top || base::StartsWith(p, std::string(top) + "/")) return true;
    }
    for (const auto& d : dests) {
      if (d != p && base::StartsWith(p, d + "/")) return true;
    }
    return false;
  };
  auto add = [&](const std::string& p, bool file) {
    if (plain(p) && !own_mount(p)) out.push_back({p, file});
  };
  for (const auto& m : c.mounts) {
    struct stat st;
    if (stat(m.host_path.c_str(), &st) == 0) add(m.container_path, !S_ISDIR(st.st_mode));
  }
  for (const char* f : {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}) {
    if (std::find(dests.begin(), dests.end(), f) == dests.end()) add(f, true);
  }
  return out;
}

// The container's record, container.json, written whole before it appears under its name
// (the record is what makes the container exist after a restart: Runtime::Adopt). A directory
// from the pool has an empty file made ahead to write it into (no new inode on the disk).
Result<> WriteContainerRecord(const std::string& dir, const std::string& record, bool pooled) {
  std::string what = "write the state of the container in " + dir;
  if (pooled) {
    std::string stage = dir + "/" + ContainerDirPool::kRecordStage;
    CUBELET_TRY_CTX(base::WriteFile(stage, record), what);
    if (rename(stage.c_str(), (dir + "/container.json").c_str()) != 0) {
      return base::Errno(what + ": rename " + stage);
    }
    return {};
  }
  if (!monitor::WriteFileAtomically(dir + "/container.json", record)) return base::Errno(what);
  return {};
}

base::Error NotFound(const std::string& id) {
  return {kErrNotFound, "container \"" + id + "\" not found"};
}

}  // namespace

std::vector<std::string> Runtime::CgroupProcsFiles(const std::string& cgroup) const {
  // Every hierarchy the driver manages (v1: one per controller mount, co-mounted ones share a
  // directory; v2: the one unified directory), as Driver::AddProcess writes them.
  static const char* const kControllers[] = {
      "cpu",     "cpuacct", "cpuset",  "memory",     "devices", "freezer", "blkio", "pids",
      "hugetlb", "net_cls", "net_prio", "perf_event", "rdma",    "misc",    "systemd"};
  std::set<std::string> dirs;
  for (const char* c : kControllers) {
    std::string d = opts_.cgroups->ControllerPath(c, cgroup);
    if (!d.empty()) dirs.insert(d);
  }
  std::vector<std::string> out;
  for (const auto& d : dirs) {
    // A driver whose directories are not real (the fake one) keeps the pid/go protocol. Called
    // after the cgroup was made: once its directories were there, the driver's are real.
    if (!cgroup_dirs_real_.load(std::memory_order_relaxed) && access(d.c_str(), F_OK) != 0) {
      return {};
    }
    out.push_back(d + "/cgroup.procs");
  }
  if (!out.empty()) cgroup_dirs_real_.store(true, std::memory_order_relaxed);
  return out;
}

std::string Runtime::ContainerCgroupOomFile(const std::string& cgroup) const {
  std::string dir = opts_.cgroups->ControllerPath("memory", cgroup);
  return dir + (opts_.cgroups->version() == cgroups::Version::kV1 ? "/memory.oom_control"
                                                                   : "/memory.events");
}

std::vector<std::string> Runtime::OverlayLowers(const ImageRecord& image) const {
  std::vector<std::string> lowers(image.layers.rbegin(), image.layers.rend());
  if (lowers.empty()) lowers.push_back(images_->EmptyLayerDir());
  return lowers;
}

Result<monitor::ContainerSpec> Runtime::BuildSpec(const SandboxRecord& sb, const ContainerRecord& rec,
                                                  const cri::ContainerConfig& c,
                                                  const ImageRecord& image, const std::string& dir,
                                                  const std::string& state_dir) {
  monitor::ContainerSpec s;
  s.id = rec.id;
  s.name = c.metadata.name;
  s.rootfs = state_dir + "/rootfs";
  if (UseOverlay(image)) {
    // lowerdir lists the top layer first.
    std::vector<std::string> lowers = OverlayLowers(image);
    s.lower = base::Join(lowers, ":");
    if (s.lower.size() > 3000) {
      // The mount data is one page: name the layers relative to the layer store instead.
      std::string base = images_->dir() + "/layers/";
      for (auto& l : lowers) {
        if (base::StartsWith(l, base)) l = l.substr(base.size());
      }
      s.lower = base::Join(lowers, ":");
      s.lower_base = base;
    }
    s.upper = dir + "/upper";
    s.work = dir + "/work";
    s.overlay_volatile = overlay_volatile_;
  } else {
    s.lower = dir + "/rootfs-copy";
  }
  const auto& sc = c.linux.security_context;
  s.readonly_rootfs = sc.readonly_rootfs;
  s.netns = sb.netns;
  s.ipcns = sb.ipcns;
  s.utsns = sb.utsns;
  s.host_pid = sc.namespace_options.pid == cri::NamespaceMode::kNode;
  auto argv = ResolveCommand(image.config, c.command, c.args);
  if (!argv) return tl::unexpected(argv.error());
  s.args = *argv;
  std::string hostname = sb.config.hostname.empty() ? sb.config.metadata.name : sb.config.hostname;
  std::vector<std::string> base_env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + hostname};
  std::vector<std::string> image_env = base_env;
  for (const auto& e : image.config.env) image_env.push_back(e);
  s.env = MergeEnv(image_env, c.envs);
  s.cwd = !c.working_dir.empty() ? c.working_dir
          : !image.config.working_dir.empty() ? image.config.working_dir : "/";
  auto user = ResolveUser(image.layers, image.config.user, sc);
  if (!user) return tl::unexpected(user.error());
  s.uid = user->uid;
  s.gid = user->gid;
  s.groups = user->groups;
  auto caps = ComputeCapabilities(sc.capabilities, sc.privileged);
  if (!caps) return tl::unexpected(caps.error());
  s.capabilities = *caps;
  s.no_new_privs = sc.no_new_privs;
  s.privileged = sc.privileged;
  if (!sc.privileged) {
    auto prog = BuildSeccompProgram(sc.seccomp, s.capabilities);
    if (!prog) return tl::unexpected(prog.error().Wrap("seccomp"));
    if (!prog->empty()) {
      s.seccomp_bpf = state_dir + "/seccomp.bpf";
      if (!monitor::WriteFileAtomically(s.seccomp_bpf, *prog)) {
        return base::Errno("write " + s.seccomp_bpf);
      }
    }
    for (const char* p : kMaskedPaths) s.masked_paths.push_back(p);
    for (const char* p : kReadonlyPaths) s.readonly_paths.push_back(p);
  }
  for (const auto& p : sc.masked_paths) s.masked_paths.push_back(p);
  for (const auto& p : sc.readonly_paths) s.readonly_paths.push_back(p);
  if (c.linux.resources.oom_score_adj != 0) {
    s.has_oom_score_adj = true;
    s.oom_score_adj = static_cast<int>(c.linux.resources.oom_score_adj);
  }
  s.log_path = rec.log_path;
  s.oom_counter = ContainerCgroupOomFile(rec.cgroup);
  s.cgroup_procs = CgroupProcsFiles(rec.cgroup);
  bool has_hosts = false, has_hostname = false, has_resolv = false, has_shm = false;
  for (const auto& m : c.mounts) {
    if (m.container_path.empty() || m.container_path[0] != '/') {
      return base::Fail("mount destination \"" + m.container_path + "\" is not absolute");
    }
    if (!base::PathExists(m.host_path)) {
      return base::Fail("mount source \"" + m.host_path + "\" does not exist");
    }
    monitor::MountSpec ms;
    ms.source = m.host_path;
    ms.destination = m.container_path;
    ms.readonly = m.readonly;
    s.mounts.push_back(ms);
    has_hosts |= m.container_path == "/etc/hosts";
    has_hostname |= m.container_path == "/etc/hostname";
    has_resolv |= m.container_path == "/etc/resolv.conf";
    has_shm |= m.container_path == "/dev/shm";
  }
  if (!has_shm && !sb.shm.empty()) {
    monitor::MountSpec ms;
    ms.source = sb.shm;
    ms.destination = "/dev/shm";
    ms.recursive = false;
    s.mounts.push_back(ms);
  }
  std::string sdir = SandboxDir(sb.id);
  auto add = [&](bool skip, const std::string& file, const std::string& dest) {
    if (skip) return;
    monitor::MountSpec ms;
    ms.source = sdir + "/" + file;
    ms.destination = dest;
    ms.readonly = sc.readonly_rootfs;
    ms.recursive = false;
    s.mounts.push_back(ms);
  };
  add(has_hosts, "hosts", "/etc/hosts");
  add(has_hostname, "hostname", "/etc/hostname");
  add(has_resolv, "resolv.conf", "/etc/resolv.conf");
  return s;
}

Result<std::string> Runtime::CreateContainer(const std::string& sandbox_id,
                                             const cri::ContainerConfig& c,
                                             const cri::PodSandboxConfig& sandbox_config) {
  (void)sandbox_config;  // the stored sandbox record is authoritative
  std::string what = "create container \"" + c.metadata.name + "\"";
  auto fail = [&](const base::Error& e, int code = kErrCreateContainer) {
    base::Error out = e.Wrap(what);
    if (out.code < 1000) out.code = code;
    return tl::unexpected(out);
  };
  SandboxRecord sb;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(sandbox_id);
    if (it == sandboxes_.end()) {
      return fail({kErrNotFound, "pod sandbox \"" + sandbox_id + "\" not found"});
    }
    sb = it->second.rec;
    for (const auto& [id, other] : containers_) {
      if (other.rec.sandbox_id == sandbox_id && other.rec.metadata.name == c.metadata.name &&
          other.rec.metadata.attempt == c.metadata.attempt) {
        return fail({0, "name \"" + c.metadata.name + "\" attempt " +
                            std::to_string(c.metadata.attempt) + " is already used by " + id});
      }
    }
  }
  if (!sb.ready) return fail({0, "pod sandbox " + sandbox_id + " is not ready"});
  auto image = images_->Find(c.image.image);
  if (!image) return fail({kErrNotFound, "image \"" + c.image.image + "\" not found"});

  ContainerRecord rec;
  rec.id = base::RandomHexId();
  rec.sandbox_id = sandbox_id;
  rec.metadata = c.metadata;
  rec.image = c.image;
  rec.image_id = image->id;
  rec.image_ref = "sha256:" + image->id;
  if (!image->repo_digests.empty()) {
    // Prefer the digest of the repository the image was named by (an image can have several).
    rec.image_ref = image->repo_digests.front();
    if (auto named = ParseImageRef(c.image.image)) {
      for (const auto& d : image->repo_digests) {
        if (base::StartsWith(d, named->Repository() + "@")) rec.image_ref = d;
      }
    }
  }
  rec.created_at = base::ToUnixNanos(std::chrono::system_clock::now());
  rec.labels = c.labels;
  rec.annotations = c.annotations;
  rec.mounts = c.mounts;
  rec.cgroup = JoinCgroupPath(sb.cgroup, rec.id);
  int sig = SignalFromName(c.stop_signal.empty() ? image->config.stop_signal : c.stop_signal);
  rec.stop_signal = sig > 0 ? sig : SIGTERM;
  if (!sb.config.log_directory.empty() && !c.log_path.empty()) {
    rec.log_path = sb.config.log_directory + "/" + c.log_path;
  }
  std::string dir = ContainerDir(rec.id);
  std::string state_dir = ContainerStateDir(rec.id);
  bool ok = false;
  std::shared_ptr<std::future<base::UniqueFd>> rootfs_mount;
  std::future<Result<>> disk_made;  // upper/ and work/ made on the disk (not from the pool)
  auto undo = base::Defer([&] {
    if (!ok) {
      if (rootfs_mount) rootfs_mount->get();  // done with dir/ (and unmounted) before removal
      (void)opts_.cgroups->Remove(rec.cgroup);
      (void)base::RemoveAll(dir);
      (void)base::RemoveAll(state_dir);
    }
  });
  // The container's directory with upper/ and work/ made ahead (dir_pool.h): one rename, here,
  // so that the overlay mount below can start at once.
  const bool pooled = UseOverlay(*image) && dirs_->TakeInto(dir);
  if (UseOverlay(*image)) {
    if (!pooled) dirs_->Replenish();  // ran dry (starts replenish it)
    // On another thread, while this one makes the cgroup and the spec: the writable layer's
    // directories unless taken from the pool (inodes on the disk cost up to ~1 ms each on some
    // hosts), then the overlay mount (which makes more in work/), detached.
    OverlayLayout layout{OverlayLowers(*image), dir + "/upper", dir + "/work", overlay_volatile_};
    std::vector<MountPoint> points = PreparableMountPoints(c);
    auto made = std::make_shared<std::promise<Result<>>>();
    if (!pooled) disk_made = made->get_future();
    rootfs_mount = std::make_shared<std::future<base::UniqueFd>>(tasks_->Run(
        [layout = std::move(layout), points = std::move(points), made,
         pooled]() -> base::UniqueFd {
          if (!pooled) {
            for (const auto& d : {layout.upper, layout.work}) {
              if (auto r = base::MkdirAll(d, 0755); !r) {
                made->set_value(tl::unexpected(r.error()));
                return {};
              }
            }
            made->set_value({});
          }
          auto m = MountOverlayDetached(layout);
          if (!m) {
            // The init mounts it from the spec instead (and reports what fails there).
            base::log::Debug("detached overlay mount not made", {{"error", m.error().message}});
            return {};
          }
          PrepareMountPoints(m->get(), points);
          return std::move(*m);
        }));
  }
  if (auto r = base::MkdirAll(state_dir + "/rootfs", 0755); !r) return fail(r.error());
  if (!UseOverlay(*image)) {
    if (auto r = CopyLayersMerged(image->layers, dir + "/rootfs-copy"); !r) return fail(r.error());
  }
  if (!rec.log_path.empty()) {
    if (auto r = base::MkdirAll(rec.log_path.substr(0, rec.log_path.rfind('/')), 0755); !r) {
      return fail(r.error());
    }
  }
  if (auto r = opts_.cgroups->Create(rec.cgroup); !r) return fail(r.error());
  cgroups::Resources res = ToCgroupResourcesForRuntime(c.linux.resources);
  // runc's default device allow-list: mknod of anything (CAP_MKNOD is in the default set) but
  // no read/write of devices other than the /dev set, so a node cannot reach the host's disks.
  // Privileged containers may use every device.
  using cgroups::DeviceRule;
  if (c.linux.security_context.privileged) {
    res.devices = std::vector<DeviceRule>{{true, 'a', -1, -1, "rwm"}};
  } else {
    res.devices = std::vector<DeviceRule>{
        {true, 'c', -1, -1, "m"},  {true, 'b', -1, -1, "m"},    {true, 'c', 1, 3, "rwm"},
        {true, 'c', 1, 5, "rwm"},  {true, 'c', 1, 7, "rwm"},    {true, 'c', 1, 8, "rwm"},
        {true, 'c', 1, 9, "rwm"},  {true, 'c', 5, 0, "rwm"},    {true, 'c', 5, 1, "rwm"},
        {true, 'c', 5, 2, "rwm"},  {true, 'c', 136, -1, "rwm"}, {true, 'c', 10, 200, "rwm"}};
  }
  if (auto r = opts_.cgroups->Apply(rec.cgroup, res); !r) {
    return fail(r.error());
  }
  auto spec = BuildSpec(sb, rec, c, *image, dir, state_dir);
  if (!spec) return fail(spec.error());
  if (!monitor::WriteFileAtomically(state_dir + "/spec", monitor::EncodeSpec(*spec))) {
    return fail(base::Errno("write the state of container " + rec.id).value());
  }
  if (disk_made.valid()) {
    if (auto r = disk_made.get(); !r) return fail(r.error());
  }
  if (auto r = WriteContainerRecord(dir, EncodeContainerRecord(rec), pooled); !r) {
    return fail(r.error());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    Container& nc = containers_[rec.id];
    nc = Container{rec, std::nullopt, std::nullopt, false, dir, state_dir, false, rootfs_mount};
    nc.self_join = !spec->cgroup_procs.empty();
  }
  ok = true;
  Emit(rec.id, sandbox_id, cri::ContainerEvent::Type::kCreated);
  return rec.id;
}

Result<> Runtime::StartContainer(const std::string& id) {
  std::string dir, disk_dir, cgroup, name, sandbox_id;
  std::shared_ptr<std::future<base::UniqueFd>> rootfs_mount;
  bool self_join = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return tl::unexpected(NotFound(id));
    Container& c = it->second;
    if (c.starting || c.start || c.exit) {
      return base::Fail("start container \"" + c.rec.metadata.name + "\" (" + id +
                            "): container is in " +
                            (c.exit ? "exited" : c.start ? "running" : "starting") + " state",
                        kErrRunContainer);
    }
    c.starting = true;
    rootfs_mount = std::move(c.rootfs_mount);
    dir = c.state_dir;
    disk_dir = c.dir;
    self_join = c.self_join;
    cgroup = c.rec.cgroup;
    name = c.rec.metadata.name;
    sandbox_id = c.rec.sandbox_id;
  }
  std::string what = "failed to start container \"" + name + "\" (" + id + ")";
  auto finish = [&](std::optional<monitor::StartRecord> sr) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return;
    it->second.starting = false;
    it->second.start = sr;
    LoadExitLocked(it->second);
  };
  auto fail = [&](const std::string& msg) {
    finish(std::nullopt);
    // The monitor records a start error itself; make sure one exists even if it never ran.
    if (!base::PathExists(dir + "/exit")) {
      monitor::ExitRecord er;
      er.exit_code = 128;
      er.finished_at_ns = base::ToUnixNanos(std::chrono::system_clock::now());
      er.reason = "StartError";
      er.message = msg;
      monitor::WriteFileAtomically(dir + "/exit", monitor::EncodeExit(er));
      finish(std::nullopt);
    }
    return base::Fail(what + ": " + msg, kErrRunContainer);
  };
  // The rootfs mount made since CreateContainer: with the run command when it is ready, else
  // right after it ("run+"), so that it overlaps the monitor's wake-up and the init's first
  // steps (cgroup join, namespaces); the init waits for it only when it needs the rootfs.
  // The monitor gets its own reference to the detached mount; ours is closed here.
  base::UniqueFd rootfs_fd;
  bool rootfs_follows = false;
  if (rootfs_mount) {
    rootfs_follows = self_join && rootfs_mount->wait_for(std::chrono::seconds(0)) !=
                                      std::future_status::ready;
    if (!rootfs_follows) rootfs_fd = rootfs_mount->get();
  }
  // Without it the init mounts the overlay. A detached mount made by an earlier cubelet process
  // (gone with it, never attached: nothing was written to upper/) left the "volatile" marker
  // in work/work, which makes overlayfs refuse the work directory: clear it.
  auto clear_volatile_marker = [&] { (void)base::RemoveAll(disk_dir + "/work/work"); };
  if (!rootfs_follows && !rootfs_fd) clear_volatile_marker();
  auto mon = monitors_->Run(dir, rootfs_fd.get(), rootfs_follows);
  auto replenish = base::Defer([&] {
    monitors_->Replenish();
    dirs_->Replenish();
  });
  rootfs_fd.reset();
  if (!mon) return fail(mon.error().message);
  // The monitor is our child (no double fork: see monitor_main.cc): the exit watcher reaps it,
  // through the pidfd taken at spawn, while the pid could not have been reused.
  base::UniqueFd mon_pidfd = std::move(mon->pidfd);
  const bool have_pidfd = static_cast<bool>(mon_pidfd);
  auto reap = base::Defer([&] {
    if (mon_pidfd) watcher_->Reap(std::move(mon_pidfd));
    // Without a pidfd (fd limit reached at spawn) a thread waits for it. A pidfd handed to
    // Watch below is reaped by the watcher: nothing to do here (this used to start a thread
    // per container, on the start path, that raced the watcher to reap the monitor).
    else if (!have_pidfd) std::thread([pid = mon->pid] { WaitChild(pid); }).detach();
  });
  if (rootfs_follows) {
    rootfs_fd = rootfs_mount->get();
    if (!rootfs_fd) clear_volatile_marker();
    // A monitor that died shows in its status line below.
    (void)SendCommand(mon->command.get(), "rootfs", rootfs_fd.get());
    rootfs_fd.reset();
  }
  auto line = ReadStatusLine(mon->status.get(), std::chrono::seconds(60));
  if (!line) return fail(line.error().message);
  if (base::StartsWith(*line, "pid ")) {
    // A spec without cgroup_procs (written before an upgrade): the init waits for "go" until
    // cubelet has put it in the container cgroup.
    pid_t init = static_cast<pid_t>(atoi(line->c_str() + 4));
    if (auto r = opts_.cgroups->AddProcess(cgroup, init); !r) {
      mon->command.reset();  // the monitor kills the init and records a start error
      (void)ReadStatusLine(mon->status.get(), std::chrono::seconds(10));
      return fail(r.error().message);
    }
    if (auto r = SendCommand(mon->command.get(), "go"); !r) return fail(r.error().message);
    line = ReadStatusLine(mon->status.get(), std::chrono::seconds(60));
    if (!line) return fail(line.error().message);
  }
  if (base::StartsWith(*line, "error ")) return fail(monitor::Unescape(line->substr(6)));
  if (*line != "ok") return fail("bad monitor status \"" + *line + "\"");
  std::string s;
  monitor::StartRecord sr;
  if (!monitor::ReadWholeFile(dir + "/started", &s) || !monitor::DecodeStart(s, &sr)) {
    return fail("the monitor did not record the start");
  }
  finish(sr);
  // The status pipe stays open: the monitor says "exited" on it once the exit record is
  // written, before its own teardown (which costs ~1 ms of page-table work on small VMs).
  if (!mon_pidfd) {
    OnMonitorExit(id);
  } else if (!watcher_->Watch(id, std::move(mon_pidfd), std::move(mon->status))) {
    std::thread([pid = mon->pid] { WaitChild(pid); }).detach();  // still ours to reap
    OnMonitorExit(id);
  }
  Emit(id, sandbox_id, cri::ContainerEvent::Type::kStarted);
  return {};
}

bool Runtime::WaitExited(const std::string& id, std::chrono::milliseconds timeout) {
  monitor::StartRecord sr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return true;
    if (it->second.exit || LoadExitLocked(it->second) || !it->second.start) return true;
    sr = *it->second.start;
  }
  auto pidfd = OpenPidFd(sr.monitor_pid, sr.monitor_start_ticks);
  if (pidfd) {
    pollfd p{pidfd->get(), POLLIN, 0};
    int n;
    do {
      n = poll(&p, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n == 0) return false;
  }
  // The monitor is gone; its exit file is final. The watcher thread may not have run yet.
  std::lock_guard<std::mutex> lock(mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return true;
  return LoadExitLocked(it->second) || true;
}

Result<> Runtime::StopContainerImpl(const std::string& id, std::chrono::seconds timeout) {
  monitor::StartRecord sr;
  std::string cgroup, name;
  int sig;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return {};  // idempotent
    Container& c = it->second;
    if (!c.start || c.exit || LoadExitLocked(c)) return {};
    sr = *c.start;
    cgroup = c.rec.cgroup;
    name = c.rec.metadata.name;
    sig = c.rec.stop_signal;
  }
  if (timeout.count() > 0) {
    auto init = OpenPidFd(sr.init_pid, sr.init_start_ticks);
    if (init) {
      if (syscall(SYS_pidfd_send_signal, init->get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
        base::log::Warn("stop signal failed", {{"id", id}, {"error", strerror(errno)}});
      }
      if (WaitExited(id, std::chrono::duration_cast<std::chrono::milliseconds>(timeout))) {
        // The monitor wrote the exit and left.
        OnMonitorExitIfUnwatched(id);
        return {};
      }
    }
  }
  // Freeze, SIGKILL everything in the container cgroup, thaw.
  if (opts_.cgroups->Exists(cgroup)) {
    if (auto r = opts_.cgroups->KillAll(cgroup); !r) {
      return tl::unexpected(r.error().Wrap("stop container \"" + name + "\" (" + id + ")"));
    }
  } else {
    auto init = OpenPidFd(sr.init_pid, sr.init_start_ticks);
    if (init) syscall(SYS_pidfd_send_signal, init->get(), SIGKILL, nullptr, 0);
  }
  if (!WaitExited(id, std::chrono::seconds(10))) {
    return base::Fail("stop container \"" + name + "\" (" + id +
                      "): its monitor did not record the exit within 10s");
  }
  OnMonitorExitIfUnwatched(id);
  return {};
}

Result<> Runtime::StopContainer(const std::string& id, std::chrono::seconds timeout) {
  return StopContainerImpl(id, timeout);
}

Result<> Runtime::RemoveContainer(const std::string& id) {
  CUBELET_TRY(StopContainerImpl(id, std::chrono::seconds(0)));
  std::string cgroup, dir, state_dir, sandbox_id;
  std::shared_ptr<std::future<base::UniqueFd>> rootfs_mount;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) {
      // Unknown: clean leftover directories if any (crash during create).
      CUBELET_TRY(base::RemoveAll(ContainerStateDir(id)));
      return base::RemoveAll(ContainerDir(id));
    }
    cgroup = it->second.rec.cgroup;
    dir = it->second.dir;
    state_dir = it->second.state_dir;
    sandbox_id = it->second.rec.sandbox_id;
    rootfs_mount = std::move(it->second.rootfs_mount);
  }
  // Never started: the detached overlay (if made) goes before its directories do.
  if (rootfs_mount) rootfs_mount->get();
  watcher_->Unwatch(id);
  std::string what = "remove container " + id;
  CUBELET_TRY_CTX(opts_.cgroups->Remove(cgroup), what);
  // The rootfs was mounted only inside the container's mount namespace, which is gone with its
  // processes; nothing is mounted under the directories on the host.
  CUBELET_TRY_CTX(base::RemoveAll(dir), what);
  if (state_dir != dir) CUBELET_TRY_CTX(base::RemoveAll(state_dir), what);
  {
    std::lock_guard<std::mutex> lock(mu_);
    containers_.erase(id);
  }
  Emit(id, sandbox_id, cri::ContainerEvent::Type::kDeleted);
  return {};
}

std::vector<cri::Container> Runtime::ListContainers(const cri::ContainerFilter& f) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<cri::Container> out;
  for (auto& [id, c] : containers_) {
    if (!f.id.empty() && !base::StartsWith(id, f.id)) continue;
    if (!f.pod_sandbox_id.empty() && !base::StartsWith(c.rec.sandbox_id, f.pod_sandbox_id)) continue;
    LoadExitLocked(c);
    auto state = StateLocked(c);
    if (f.state && *f.state != state) continue;
    bool match = true;
    for (const auto& [k, v] : f.label_selector) {
      auto l = c.rec.labels.find(k);
      if (l == c.rec.labels.end() || l->second != v) match = false;
    }
    if (!match) continue;
    cri::Container o;
    o.id = id;
    o.pod_sandbox_id = c.rec.sandbox_id;
    o.metadata = c.rec.metadata;
    o.image = c.rec.image;
    o.image_ref = c.rec.image_ref;
    o.state = state;
    o.created_at = c.rec.created_at;
    o.labels = c.rec.labels;
    o.annotations = c.rec.annotations;
    out.push_back(std::move(o));
  }
  return out;
}

Result<cri::ContainerStatus> Runtime::ContainerStatus(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return tl::unexpected(NotFound(id));
  Container& c = it->second;
  LoadExitLocked(c);
  cri::ContainerStatus st;
  st.id = id;
  st.metadata = c.rec.metadata;
  st.state = StateLocked(c);
  st.created_at = c.rec.created_at;
  st.image = c.rec.image;
  st.image_ref = c.rec.image_ref;
  st.labels = c.rec.labels;
  st.annotations = c.rec.annotations;
  st.mounts = c.rec.mounts;
  st.log_path = c.rec.log_path;
  if (c.start) st.started_at = c.start->started_at_ns;
  if (c.exit) {
    st.finished_at = c.exit->finished_at_ns;
    st.exit_code = c.exit->exit_code;
    st.reason = c.exit->reason;
    st.message = c.exit->message;
  } else if (c.start) {
    st.pid = c.start->init_pid;
  }
  return st;
}

Result<> Runtime::UpdateContainerResources(const std::string& id,
                                           const cri::LinuxContainerResources& r) {
  std::string cgroup;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return tl::unexpected(NotFound(id));
    cgroup = it->second.rec.cgroup;
  }
  CUBELET_TRY_CTX(opts_.cgroups->Apply(cgroup, ToCgroupResourcesForRuntime(r)),
                  "update resources of container " + id);
  return {};
}

Result<> Runtime::ReopenContainerLog(const std::string& id) {
  std::string log_path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return tl::unexpected(NotFound(id));
    Container& c = it->second;
    if (!c.start || c.exit || LoadExitLocked(c)) {
      return base::Fail("reopen log of container " + id + ": container is not running");
    }
    auto pidfd = OpenPidFd(c.start->monitor_pid, c.start->monitor_start_ticks);
    if (!pidfd) return tl::unexpected(pidfd.error().Wrap("reopen log of container " + id));
    if (syscall(SYS_pidfd_send_signal, pidfd->get(), SIGUSR1, nullptr, 0) != 0) {
      return base::Errno("reopen log of container " + id);
    }
    log_path = c.rec.log_path;
  }
  // The monitor reopens on SIGUSR1; return once it has (as containerd's does), so that after a
  // rotation readers never find the log path missing.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!log_path.empty() && !base::PathExists(log_path)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return base::Fail("reopen log of container " + id + ": the monitor did not create " +
                        log_path + " within 2s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {};
}

}  // namespace runtime
