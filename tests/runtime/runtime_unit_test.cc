// Unit tests of the runtime's pure parts: command/env/user resolution, image references,
// CRI log encoding, the monitor's file formats, state records, capabilities, tar + layers.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "base/file.h"
#include "runtime/background.h"
#include "runtime/command.h"
#include "runtime/dir_pool.h"
#include "runtime/task_runner.h"
#include "runtime/image_ref.h"
#include "runtime/image_store.h"
#include "runtime/layer.h"
#include "runtime/monitor/cri_log.h"
#include "runtime/monitor/lookpath.h"
#include "runtime/monitor/spec.h"
#include "runtime/security.h"
#include "runtime/state.h"
#include "tests/runtime/test_image.h"
#include "tests/support/kernel_env.h"

using namespace runtime;

namespace {

std::string TempDir(const std::string& name) {
  std::string d = "/tmp/cubelet-rt-unit-" + name + "-" + std::to_string(getpid());
  testsupport::Run("rm -rf " + d + " && mkdir -p " + d);
  return d;
}

}  // namespace

TEST_CASE("command: kubelet/containerd rules for command and args") {
  ImageConfig img;
  img.entrypoint = {"/entry"};
  img.cmd = {"default-arg"};
  using V = std::vector<std::string>;
  CHECK(*ResolveCommand(img, {}, {}) == V{"/entry", "default-arg"});
  CHECK(*ResolveCommand(img, {}, {"a", "b"}) == V{"/entry", "a", "b"});
  CHECK(*ResolveCommand(img, {"sh", "-c"}, {}) == V{"sh", "-c"});
  CHECK(*ResolveCommand(img, {"sh"}, {"-c", "x"}) == V{"sh", "-c", "x"});
  ImageConfig empty;
  auto r = ResolveCommand(empty, {}, {});
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "no command specified");
  ImageConfig cmd_only;
  cmd_only.cmd = {"sh"};
  CHECK(*ResolveCommand(cmd_only, {}, {}) == V{"sh"});
}

TEST_CASE("command: env is image Env then config envs, later keys replace in place") {
  auto env = MergeEnv({"PATH=/bin", "A=1", "B=2"}, {{"B", "3"}, {"C", "4"}, {"PATH", "/x"}});
  CHECK(env == std::vector<std::string>{"PATH=/x", "A=1", "B=3", "C=4"});
}

TEST_CASE("command: user resolution reads the image's passwd and group") {
  std::string d = TempDir("user");
  base::MkdirAll(d + "/etc");
  base::WriteFile(d + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n");
  base::WriteFile(d + "/etc/group", "root:x:0:\napp:x:1001:\nextra:x:2000:app,other\nwheel:x:10:root\n");
  cri::LinuxContainerSecurityContext sc;
  auto u = ResolveUser({d}, "app", sc);
  REQUIRE(u);
  CHECK(u->uid == 1000);
  CHECK(u->gid == 1001);
  CHECK(u->groups == std::vector<uint32_t>{2000});
  CHECK(u->home == "/home/app");
  u = ResolveUser({d}, "", sc);
  REQUIRE(u);
  CHECK(u->uid == 0);
  CHECK(u->groups == std::vector<uint32_t>{10});
  u = ResolveUser({d}, "4242:7", sc);  // numeric, not in passwd
  REQUIRE(u);
  CHECK(u->uid == 4242);
  CHECK(u->gid == 7);
  u = ResolveUser({d}, "app:extra", sc);
  REQUIRE(u);
  CHECK(u->gid == 2000);
  CHECK_FALSE(ResolveUser({d}, "nobody-here", sc));
  sc.run_as_user = 1000;
  sc.run_as_group = 5;
  sc.supplemental_groups = {300};
  u = ResolveUser({d}, "root", sc);
  REQUIRE(u);
  CHECK(u->uid == 1000);
  CHECK(u->gid == 5);
  CHECK(u->groups == std::vector<uint32_t>{2000, 300});
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("image ref: docker normalisation") {
  auto n = [](const std::string& s) {
    auto r = ParseImageRef(s);
    return r ? r->String() : "ERR: " + r.error().message;
  };
  CHECK(n("busybox") == "docker.io/library/busybox:latest");
  CHECK(n("busybox:1.36") == "docker.io/library/busybox:1.36");
  CHECK(n("library/busybox") == "docker.io/library/busybox:latest");
  CHECK(n("docker.io/busybox") == "docker.io/library/busybox:latest");
  CHECK(n("index.docker.io/library/busybox") == "docker.io/library/busybox:latest");
  CHECK(n("foo/bar") == "docker.io/foo/bar:latest");
  CHECK(n("localhost/app") == "localhost/app:latest");
  CHECK(n("localhost:5000/app:v1") == "localhost:5000/app:v1");
  CHECK(n("127.0.0.1:5000/team/app") == "127.0.0.1:5000/team/app:latest");
  CHECK(n("registry.k8s.io/pause:3.9") == "registry.k8s.io/pause:3.9");
  std::string dg = "sha256:" + std::string(64, 'a');
  CHECK(n("busybox@" + dg) == "docker.io/library/busybox@" + dg);
  CHECK(n("busybox:1.36@" + dg) == "docker.io/library/busybox:1.36@" + dg);
  CHECK_FALSE(ParseImageRef("BusyBox"));
  CHECK_FALSE(ParseImageRef("busybox@sha256:abc"));
  CHECK_FALSE(ParseImageRef(""));
  CHECK_FALSE(ParseImageRef("busybox:bad tag"));
  CHECK(ImageIdFromRef(dg) == std::string(64, 'a'));
  CHECK(ImageIdFromRef(std::string(64, 'b')) == std::string(64, 'b'));
  CHECK(ImageIdFromRef("busybox").empty());
}

TEST_CASE("cri log: timestamps and full/partial lines") {
  CHECK(monitor::FormatRfc3339NanoUtc(1475713029669794202LL) == "2016-10-06T00:17:09.669794202Z");
  CHECK(monitor::FormatRfc3339NanoUtc(1475713029000000000LL) == "2016-10-06T00:17:09Z");
  CHECK(monitor::FormatRfc3339NanoUtc(1475713029500000000LL) == "2016-10-06T00:17:09.5Z");
  const int64_t t = 1475713029669794202LL;
  const std::string ts = "2016-10-06T00:17:09.669794202Z";
  monitor::CriLineSplitter s("stdout");
  std::string out;
  s.Feed("hello\nwor", t, &out);
  CHECK(out == ts + " stdout F hello\n");
  out.clear();
  s.Feed("ld\n\n", t, &out);
  CHECK(out == ts + " stdout F world\n" + ts + " stdout F \n");
  out.clear();
  s.Feed("tail", t, &out);
  CHECK(out.empty());
  s.Finish(t, &out);
  CHECK(out == ts + " stdout P tail\n");

  // A line longer than 16 KiB is split into P entries, the last piece is F.
  monitor::CriLineSplitter e("stderr");
  out.clear();
  std::string big(monitor::kMaxLineBytes + 10, 'x');
  e.Feed(big + "\n", t, &out);
  CHECK(out == ts + " stderr P " + std::string(monitor::kMaxLineBytes, 'x') + "\n" + ts +
                   " stderr F " + std::string(10, 'x') + "\n");
  // Exactly 16 KiB followed by a newline is one full line.
  out.clear();
  e.Feed(std::string(monitor::kMaxLineBytes, 'y') + "\n", t, &out);
  CHECK(out == ts + " stderr F " + std::string(monitor::kMaxLineBytes, 'y') + "\n");
}

TEST_CASE("monitor files: spec, start and exit records round-trip") {
  monitor::ContainerSpec s;
  s.id = "abc";
  s.name = "main";
  s.rootfs = "/r/rootfs";
  s.lower = "/img/rootfs";
  s.upper = "/r/upper";
  s.work = "/r/work";
  s.readonly_rootfs = true;
  s.netns = "/run/cubelet/netns/x";
  s.host_pid = true;
  s.mounts.push_back({"/host/with\ttab", "/in/ctr\nnewline", "bind", true, false});
  s.mounts.push_back({"tmpfs", "/tmp", "tmpfs", false, true});
  s.masked_paths = {"/proc/kcore"};
  s.readonly_paths = {"/proc/sys"};
  s.args = {"sh", "-c", "echo 'a\\b'\n"};
  s.env = {"A=1", "B=x=y"};
  s.cwd = "/work dir";
  s.uid = 1000;
  s.gid = 1001;
  s.groups = {1, 2};
  s.capabilities = 0xa80425fbULL;
  s.no_new_privs = true;
  s.seccomp_bpf = "/r/seccomp.bpf";
  s.has_oom_score_adj = true;
  s.oom_score_adj = -997;
  s.log_path = "/var/log/pods/ns_n_u/main/0.log";
  s.oom_counter = "/sys/fs/cgroup/memory/x/memory.oom_control";
  s.rlimits.push_back({7, 1024, 4096});
  s.overlay_volatile = true;
  s.cgroup_procs = {"/sys/fs/cgroup/memory/x/cgroup.procs", "/sys/fs/cgroup/pids/x/cgroup.procs"};
  monitor::ContainerSpec d;
  std::string err;
  REQUIRE(monitor::DecodeSpec(monitor::EncodeSpec(s), &d, &err));
  CHECK(monitor::EncodeSpec(d) == monitor::EncodeSpec(s));
  CHECK(d.mounts[0].source == "/host/with\ttab");
  CHECK(d.mounts[0].destination == "/in/ctr\nnewline");
  CHECK(d.mounts[0].readonly);
  CHECK_FALSE(d.mounts[0].recursive);
  CHECK(d.args == s.args);
  CHECK(d.oom_score_adj == -997);
  CHECK(d.capabilities == s.capabilities);
  CHECK(d.overlay_volatile);
  CHECK(d.cgroup_procs == s.cgroup_procs);
  CHECK_FALSE(monitor::DecodeSpec("id=x\n", &d, &err));
  CHECK(err.find("version") != std::string::npos);

  monitor::StartRecord st{42, 12345, 41, 12300, 1700000000123456789LL};
  monitor::StartRecord st2;
  REQUIRE(monitor::DecodeStart(monitor::EncodeStart(st), &st2));
  CHECK(st2.init_pid == 42);
  CHECK(st2.monitor_start_ticks == 12300);
  CHECK(st2.started_at_ns == 1700000000123456789LL);

  monitor::ExitRecord ex;
  ex.exit_code = 137;
  ex.signal = 9;
  ex.oom_killed = true;
  ex.reason = "OOMKilled";
  ex.message = "line1\nline2";
  monitor::ExitRecord ex2;
  REQUIRE(monitor::DecodeExit(monitor::EncodeExit(ex), &ex2));
  CHECK(ex2.exit_code == 137);
  CHECK(ex2.signal == 9);
  CHECK(ex2.oom_killed);
  CHECK(ex2.message == "line1\nline2");
  CHECK_FALSE(monitor::DecodeExit("reason=x\n", &ex2));
}

TEST_CASE("state: sandbox and container records round-trip") {
  SandboxRecord s;
  s.id = "sb1";
  s.config.metadata = {"web", "uid-1", "default", 2};
  s.config.hostname = "web";
  s.config.log_directory = "/var/log/pods/default_web_uid-1";
  s.config.dns_config.servers = {"10.96.0.10"};
  s.config.dns_config.searches = {"default.svc.cluster.local"};
  s.config.port_mappings.push_back({cri::Protocol::kUdp, 53, 5353, "127.0.0.1"});
  s.config.labels = {{"io.kubernetes.pod.name", "web"}};
  s.config.annotations = {{"a", "b"}};
  s.config.linux.cgroup_parent = "kubepods/besteffort/poduid-1";
  s.config.linux.security_context.namespace_options.network = cri::NamespaceMode::kNode;
  s.created_at = 123;
  s.ready = false;
  s.ip = "10.244.0.5";
  s.netns = "/run/cubelet/netns/sb1";
  s.cgroup = "root/kubepods/besteffort/poduid-1";
  s.network_setup = true;
  auto d = DecodeSandboxRecord(EncodeSandboxRecord(s));
  REQUIRE(d);
  CHECK(EncodeSandboxRecord(*d) == EncodeSandboxRecord(s));
  CHECK(d->config.port_mappings[0].protocol == cri::Protocol::kUdp);
  CHECK(d->config.linux.security_context.namespace_options.network == cri::NamespaceMode::kNode);

  ContainerRecord c;
  c.id = "c1";
  c.sandbox_id = "sb1";
  c.metadata = {"main", 3};
  c.image.image = "busybox";
  c.image_ref = "docker.io/library/busybox@sha256:00";
  c.labels = {{"io.kubernetes.container.name", "main"}};
  c.annotations = {{"io.kubernetes.container.restartCount", "3"}};
  c.mounts.push_back({"/data", "/host/data", true});
  c.stop_signal = 2;
  auto cd = DecodeContainerRecord(EncodeContainerRecord(c));
  REQUIRE(cd);
  CHECK(EncodeContainerRecord(*cd) == EncodeContainerRecord(c));
  CHECK(cd->annotations.at("io.kubernetes.container.restartCount") == "3");
  CHECK_FALSE(DecodeContainerRecord("{not json"));
  CHECK(SignalFromName("SIGTERM") == 15);
  CHECK(SignalFromName("int") == 2);
  CHECK(SignalFromName("9") == 9);
  CHECK(SignalFromName("SIGNOPE") == -1);
}

TEST_CASE("security: capability names and the containerd default set") {
  CHECK(CapabilityFromName("NET_ADMIN") == 12);
  CHECK(CapabilityFromName("cap_net_admin") == 12);
  CHECK(CapabilityFromName("CAP_SYS_ADMIN") == 21);
  CHECK(CapabilityFromName("NOPE") == -1);
  CHECK(CapabilityName(0) == "CAP_CHOWN");
  uint64_t def = DefaultCapabilities();
  CHECK(__builtin_popcountll(def) == 14);
  CHECK((def >> 21 & 1) == 0);  // no SYS_ADMIN by default
  cri::Capability caps;
  caps.add_capabilities = {"NET_ADMIN"};
  caps.drop_capabilities = {"CHOWN", "cap_kill"};
  auto c = ComputeCapabilities(caps, false);
  REQUIRE(c);
  CHECK((*c >> 12 & 1) == 1);
  CHECK((*c & 1) == 0);
  CHECK((*c >> 5 & 1) == 0);
  caps = {};
  caps.add_capabilities = {"ALL"};
  caps.drop_capabilities = {"MKNOD"};
  c = ComputeCapabilities(caps, false);
  REQUIRE(c);
  CHECK(*c == (AllCapabilities() & ~(1ull << 27)));
  caps = {};
  caps.drop_capabilities = {"all"};
  caps.add_capabilities = {"KILL"};
  CHECK(*ComputeCapabilities(caps, false) == (1ull << 5));
  CHECK(*ComputeCapabilities({}, true) == AllCapabilities());
  caps = {};
  caps.add_capabilities = {"BOGUS"};
  CHECK_FALSE(ComputeCapabilities(caps, false));
  // RuntimeDefault builds a non-empty BPF program; Unconfined is empty.
  auto prog = BuildSeccompProgram({}, def);
  REQUIRE(prog);
  CHECK(prog->size() % 8 == 0);
  CHECK(prog->size() > 100);
  cri::SecurityProfile unconfined;
  unconfined.profile_type = cri::SecurityProfile::Type::kUnconfined;
  CHECK(BuildSeccompProgram(unconfined, def)->empty());
  cri::SecurityProfile missing;
  missing.profile_type = cri::SecurityProfile::Type::kLocalhost;
  missing.localhost_ref = "/nonexistent/profile.json";
  CHECK_FALSE(BuildSeccompProgram(missing, def));
}

TEST_CASE("lookpath: runc-style messages") {
  std::string d = TempDir("lookpath");
  base::MkdirAll(d + "/bin");
  base::WriteFile(d + "/bin/tool", "#!/bin/sh\n");
  chmod((d + "/bin/tool").c_str(), 0755);
  base::WriteFile(d + "/bin/data", "x");
  std::string resolved, err;
  CHECK(monitor::LookPath(d, "tool", "/usr/bin:/bin", &resolved, &err));
  CHECK(resolved == "/bin/tool");
  CHECK_FALSE(monitor::LookPath(d, "data", "/bin", &resolved, &err));
  CHECK(err == "exec: \"data\": executable file not found in $PATH");
  CHECK_FALSE(monitor::LookPath(d, "/bin/missing", "/bin", &resolved, &err));
  CHECK(err == "exec: \"/bin/missing\": stat /bin/missing: no such file or directory");
  CHECK(monitor::LookPath(d, "/bin/tool", "", &resolved, &err));
  CHECK(monitor::PathFromEnv({"A=1", "PATH=/x"}) == "/x");
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("layers: whiteouts, links, path escapes and digests through an OCI layout") {
  std::string d = TempDir("layers");
  // Layer 1: a tree with a symlink, a hardlink and a directory that layer 2 makes opaque.
  testsupport::Run("mkdir -p " + d + "/l1/etc " + d + "/l1/opq/old " + d + "/l1/keep && "
                   "echo one > " + d + "/l1/etc/a && echo gone > " + d + "/l1/etc/b && "
                   "ln -s a " + d + "/l1/etc/link && ln " + d + "/l1/etc/a " + d + "/l1/etc/hard && "
                   "echo x > " + d + "/l1/opq/old/f && chmod 4755 " + d + "/l1/etc/a");
  // Layer 2: deletes etc/b, makes opq opaque (keeping its own new file).
  testsupport::Run("mkdir -p " + d + "/l2/etc " + d + "/l2/opq && touch " + d + "/l2/etc/.wh.b && "
                   "touch " + d + "/l2/opq/.wh..wh..opq && echo new > " + d + "/l2/opq/new");
  std::string digest = testimage::BuildLayout(d + "/layout", {{d + "/l1", {}}, {d + "/l2", {}}},
                                              R"("Entrypoint":["/bin/app"],"User":"1:2")", "v1");
  REQUIRE_FALSE(digest.empty());
  auto store = ImageStore::Open(d + "/store");
  REQUIRE(store);
  auto img = (*store)->ImportOciLayout(d + "/layout", "localhost:5000/test/app:v1");
  REQUIRE(img);
  // Two layers stored apart (content-addressed); what a container sees is their merged view.
  CHECK(img->layers.size() == 2);
  std::string r = d + "/merged";
  REQUIRE(CopyLayersMerged(img->layers, r));
  CHECK(*base::ReadFile(r + "/etc/a") == "one\n");
  CHECK_FALSE(base::PathExists(r + "/etc/b"));
  char buf[16] = {0};
  CHECK(readlink((r + "/etc/link").c_str(), buf, sizeof buf) == 1);
  struct stat a, h;
  // The hardlink is one inode in the layer as unpacked (the overlay lower the containers use).
  REQUIRE(stat((img->layers[0] + "/etc/a").c_str(), &a) == 0);
  REQUIRE(stat((img->layers[0] + "/etc/hard").c_str(), &h) == 0);
  CHECK(a.st_ino == h.st_ino);
  REQUIRE(stat((r + "/etc/a").c_str(), &a) == 0);
  CHECK((a.st_mode & 07777) == 04755);
  CHECK_FALSE(base::PathExists(r + "/opq/old"));
  CHECK(base::PathExists(r + "/opq/new"));
  CHECK(base::PathExists(r + "/keep"));
  CHECK(img->config.entrypoint == std::vector<std::string>{"/bin/app"});
  CHECK(img->config.user == "1:2");
  CHECK(img->repo_tags == std::vector<std::string>{"localhost:5000/test/app:v1"});
  CHECK(img->repo_digests == std::vector<std::string>{"localhost:5000/test/app@" + digest});
  // Lookups by name, digest and id; a fresh store object reads the same refs.
  auto store2 = ImageStore::Open(d + "/store");
  REQUIRE(store2);
  CHECK((*store2)->Find("localhost:5000/test/app:v1")->id == img->id);
  CHECK((*store2)->Find("localhost:5000/test/app@" + digest)->id == img->id);
  CHECK((*store2)->Find("sha256:" + img->id)->id == img->id);
  CHECK_FALSE((*store2)->Find("localhost:5000/test/app:v2"));
  // In use: refused; otherwise removed with its refs.
  CHECK_FALSE((*store2)->Remove("localhost:5000/test/app:v1", {img->id}));
  REQUIRE((*store2)->Remove("localhost:5000/test/app:v1", {}));
  CHECK_FALSE((*store2)->Find("sha256:" + img->id));
  CHECK((*store2)->List().empty());
  CHECK((*store2)->Remove("localhost:5000/test/app:v1", {}));  // idempotent

  // A tampered layer blob is rejected and nothing is stored.
  std::string blobs = d + "/layout/blobs/sha256/";
  std::string out;
  testsupport::Run("ls -S " + blobs + " | head -1", &out);
  out.erase(out.find_last_not_of("\n") + 1);
  testsupport::Run("printf 'x' | dd of=" + blobs + out + " bs=1 seek=100 conv=notrunc 2>/dev/null");
  auto bad = (*store2)->ImportOciLayout(d + "/layout", "localhost:5000/test/app:v1");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("digest") != std::string::npos);
  CHECK((*store2)->List().empty());
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("image store: a found image's record is cached by id, its names are not") {
  std::string d = TempDir("imgcache");
  testsupport::Run("mkdir -p " + d + "/tree/bin && echo x > " + d + "/tree/bin/app");
  auto store = ImageStore::Open(d + "/store");
  REQUIRE(store);
  ImageConfig cfg;
  cfg.entrypoint = {"/bin/app"};
  auto img = (*store)->ImportRootfs(d + "/tree", "example.com/app:v1", cfg);
  REQUIRE(img);
  auto a = (*store)->Find("example.com/app:v1");
  REQUIRE(a);
  CHECK(a->config.entrypoint == std::vector<std::string>{"/bin/app"});
  // Served from memory: the files it was read from are not read again.
  std::string meta = d + "/store/images/" + img->id + "/meta.json";
  std::string saved = *base::ReadFile(meta);
  REQUIRE(base::WriteFile(meta, "{\"diff_ids\": [], \"size\": 7}"));
  auto b = (*store)->Find("example.com/app:v1");
  REQUIRE(b);
  CHECK(b->layers == a->layers);
  CHECK(b->size == a->size);
  REQUIRE(base::WriteFile(meta, saved));
  // Names are current: a new tag shows at once.
  REQUIRE((*store)->Tag(img->id, {"example.com/app:v2"}));
  auto c = (*store)->Find("example.com/app:v1");
  REQUIRE(c);
  CHECK(c->repo_tags == std::vector<std::string>{"example.com/app:v1", "example.com/app:v2"});
  // Removed: gone, cache included; the image's directory gone by other means: not found.
  REQUIRE((*store)->Remove("example.com/app:v1", {}));
  CHECK_FALSE((*store)->Find("sha256:" + img->id));
  auto again = (*store)->ImportRootfs(d + "/tree", "example.com/app:v1", cfg);
  REQUIRE(again);
  REQUIRE((*store)->Find("example.com/app:v1"));
  testsupport::Run("rm -rf " + d + "/store/images/" + again->id);
  CHECK_FALSE((*store)->Find("example.com/app:v1"));
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("layers: entries escaping the root are refused, symlinks are not followed") {
  std::string d = TempDir("escape");
  testsupport::Run("mkdir -p " + d + "/src && echo x > " + d + "/src/f");
  // tar --transform writes a ../ path into the archive.
  std::string digest = testimage::BuildLayout(
      d + "/layout", {{d + "/src", {"--transform='s,^./f,../../escaped,'"}}}, R"("Cmd":["x"])", "v1");
  REQUIRE_FALSE(digest.empty());
  auto store = ImageStore::Open(d + "/store");
  REQUIRE(store);
  auto r = (*store)->ImportOciLayout(d + "/layout", "escape:v1");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("escapes the root") != std::string::npos);
  CHECK_FALSE(base::PathExists(d + "/store/escaped"));

  // Layer 1 plants a symlink to the host's /tmp dir; layer 2 writes through it: the write must
  // land inside the rootfs (the symlink resolves inside the root), never in the host dir.
  std::string host_target = d + "/host-target";
  testsupport::Run("mkdir -p " + host_target + " " + d + "/a " + d + "/b/evil && ln -s " + host_target +
                   " " + d + "/a/evil && echo pwned > " + d + "/b/evil/file");
  digest = testimage::BuildLayout(d + "/layout2", {{d + "/a", {}}, {d + "/b", {}}}, R"("Cmd":["x"])", "v1");
  REQUIRE_FALSE(digest.empty());
  auto r2 = (*store)->ImportOciLayout(d + "/layout2", "symlink:v1");
  CHECK_FALSE(base::PathExists(host_target + "/file"));
  if (r2) {
    // Layer 2's directory replaced the symlink.
    REQUIRE(CopyLayersMerged(r2->layers, d + "/merged2"));
    CHECK(*base::ReadFile(d + "/merged2/evil/file") == "pwned\n");
  }
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("tar: GNU long names and PAX paths over 100 bytes") {
  std::string d = TempDir("longnames");
  std::string deep = "a123456789/b123456789/c123456789/d123456789/e123456789/f123456789/g123456789/"
                     "h123456789/i123456789/j123456789";
  std::string name = std::string(120, 'n');
  testsupport::Run("mkdir -p " + d + "/src/" + deep + " && echo deep > " + d + "/src/" + deep + "/" + name +
                   " && ln -s " + deep + "/" + name + " " + d + "/src/link");
  for (const char* format : {"gnu", "posix"}) {
    std::string layout = d + "/layout-" + format;
    REQUIRE_FALSE(testimage::BuildLayout(layout, {{d + "/src", {std::string("--format=") + format}}},
                                         R"("Cmd":["x"])", "v1")
                      .empty());
    auto store = ImageStore::Open(d + "/store-" + format);
    REQUIRE(store);
    auto img = (*store)->ImportOciLayout(layout, std::string("long:") + format);
    REQUIRE(img);
    REQUIRE(img->layers.size() == 1);
    const std::string& layer = img->layers[0];
    CHECK(*base::ReadFile(layer + "/" + deep + "/" + name) == "deep\n");
    char buf[512] = {0};
    ssize_t n = readlink((layer + "/link").c_str(), buf, sizeof buf - 1);
    CHECK(std::string(buf, n > 0 ? n : 0) == deep + "/" + name);
  }
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("dir pool: bounded ready entries, taken by rename, leftovers and itself removed") {
  std::string d = TempDir("dirpool");
  std::string pool = d + "/pool";
  testsupport::Run("mkdir -p " + pool + "/old-entry/upper " + pool + "/.new-half");
  auto wait_ready = [](ContainerDirPool& p, size_t n) {
    for (int i = 0; i < 500 && p.ready() != n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return p.ready() == n;
  };
  auto entries = [&] {
    size_t n = 0;
    for (const auto& e : base::ListDir(pool)) n += e[0] != '.';
    return n;
  };
  {
    ContainerDirPool p(pool, 3);
    CHECK_FALSE(base::PathExists(pool + "/old-entry"));
    CHECK_FALSE(base::PathExists(pool + "/.new-half"));
    REQUIRE(wait_ready(p, 3));
    CHECK(entries() == 3);
    REQUIRE(p.TakeInto(d + "/c1"));
    CHECK(base::PathExists(d + "/c1/upper"));
    CHECK(base::PathExists(d + "/c1/work"));
    CHECK(base::PathExists(d + "/c1/" + std::string(ContainerDirPool::kRecordStage)));
    CHECK(p.ready() == 2);
    CHECK(entries() == 2);
    // A destination that exists (not empty): refused, and that entry is dropped, not leaked.
    testsupport::Run("mkdir -p " + d + "/busy/x");
    CHECK_FALSE(p.TakeInto(d + "/busy"));
    CHECK(p.ready() == 1);
    CHECK(entries() == 1);
    p.Replenish();
    REQUIRE(wait_ready(p, 3));
    p.Replenish();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(entries() == 3);  // never more than its size
  }
  CHECK_FALSE(base::PathExists(pool));  // removed with the pool
  {
    ContainerDirPool off(pool, 0);
    CHECK_FALSE(off.TakeInto(d + "/c2"));
    CHECK_FALSE(base::PathExists(d + "/c2"));
  }
  testsupport::Run("rm -rf " + d);
}

TEST_CASE("task runner: results through futures, threads kept and bounded, queue drained") {
  std::atomic<int> ran{0};
  std::vector<std::future<int>> results;
  {
    TaskRunner r(2);
    auto wait_idle = [&](size_t n) {
      for (int i = 0; i < 1000 && r.idle() != n; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      return r.idle() == n;
    };
    CHECK(r.Run([] { return 41 + 1; }).get() == 42);
    CHECK(r.threads() == 1);
    REQUIRE(wait_idle(1));
    CHECK(r.Run([] { return 7; }).get() == 7);
    CHECK(r.threads() == 1);  // the idle thread took it
    // Blocked tasks: at most 2 threads; the rest wait their turn.
    std::promise<void> gate;
    std::shared_future<void> open = gate.get_future().share();
    for (int i = 0; i < 6; ++i) {
      results.push_back(r.Run([open, &ran, i] {
        open.wait();
        ++ran;
        return i;
      }));
    }
    CHECK(r.threads() == 2);
    gate.set_value();
    CHECK(results[5].get() == 5);
    // More queued behind a blocked one still run before the runner is gone.
    std::promise<void> gate2;
    std::shared_future<void> open2 = gate2.get_future().share();
    results.clear();
    for (int i = 0; i < 3; ++i) {
      results.push_back(r.Run([open2, &ran, i] {
        open2.wait();
        ++ran;
        return i;
      }));
    }
    gate2.set_value();
  }
  CHECK(ran == 9);
  for (int i = 0; i < 3; ++i) CHECK(results[i].get() == i);
}

TEST_CASE("background waker: WakeAfter wakes no one before its delay and is not postponed; WakeNow wakes at once") {
  using namespace std::chrono;
  using runtime::BackgroundWaker;
  BackgroundWaker w;
  auto t0 = steady_clock::now();
  w.WakeAfter(milliseconds(40));
  w.Wait();
  CHECK(steady_clock::now() - t0 >= milliseconds(40));
  // An armed timer is not pushed back by a later request.
  t0 = steady_clock::now();
  w.WakeAfter(milliseconds(30));
  std::this_thread::sleep_for(milliseconds(10));
  w.WakeAfter(seconds(20));
  w.Wait();
  auto waited = steady_clock::now() - t0;
  CHECK(waited >= milliseconds(30));
  CHECK(waited < seconds(10));
  // Wake-ups are consumed: the next Wait waits for the next one; WakeNow ends it.
  std::atomic<bool> woke{false};
  std::thread th([&] {
    w.Wait();
    woke = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  CHECK_FALSE(woke.load());
  w.WakeNow();
  th.join();
  CHECK(woke.load());
  // Both at once (a timer that expired and a WakeNow): one Wait consumes both.
  w.WakeAfter(milliseconds(1));
  std::this_thread::sleep_for(milliseconds(20));
  w.WakeNow();
  w.Wait();
  t0 = steady_clock::now();
  w.WakeAfter(milliseconds(30));
  w.Wait();
  CHECK(steady_clock::now() - t0 >= milliseconds(30));
}
