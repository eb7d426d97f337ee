#include "tests/apiserver/tls_assets.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "base/file.h"
#include "tests/apiserver/util.h"

namespace apiserver {
namespace {

bool Exists(const std::string& p) {
  struct stat st{};
  return stat(p.c_str(), &st) == 0;
}

std::string Read(const std::string& p) {
  auto r = base::ReadFile(p);
  if (!r) throw std::runtime_error("read " + p + ": " + r.error().message);
  return *r;
}

void Write(const std::string& p, const std::string& data, int mode = 0600) {
  auto r = base::WriteFileAtomic(p, data, mode);
  if (!r) throw std::runtime_error("write " + p + ": " + r.error().message);
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

void Run(const std::string& cmd) {
  std::string full = cmd + " >/dev/null 2>&1";
  int rc = std::system(full.c_str());
  if (rc != 0) {
    // Re-run with output for the error message.
    std::string out;
    FILE* f = popen((cmd + " 2>&1").c_str(), "r");
    if (f) {
      char buf[512];
      while (fgets(buf, sizeof(buf), f)) out += buf;
      pclose(f);
    }
    throw std::runtime_error("openssl failed: " + cmd + ": " + out);
  }
}

std::string RandomToken() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 40; ++i) s += kChars[rd() % 36];
  return s;
}

// Issues a certificate signed by the CA (EC P-256 key).
void IssueCert(const std::string& dir, const std::string& name, const std::string& subject,
               const std::string& extensions) {
  std::string key = dir + "/" + name + ".key";
  std::string csr = dir + "/" + name + ".csr";
  std::string crt = dir + "/" + name + ".crt";
  std::string ext = dir + "/" + name + ".ext";
  Write(ext, extensions, 0644);
  Run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
      ShellQuote(key) + " -out " + ShellQuote(csr) + " -subj " + ShellQuote(subject));
  Run("openssl x509 -req -in " + ShellQuote(csr) + " -CA " + ShellQuote(dir + "/ca.crt") +
      " -CAkey " + ShellQuote(dir + "/ca.key") + " -CAcreateserial -CAserial " +
      ShellQuote(dir + "/ca.srl") + " -out " + ShellQuote(crt) + " -days 3650 -sha256 -extfile " +
      ShellQuote(ext));
  std::remove(csr.c_str());
  std::remove(ext.c_str());
  chmod(key.c_str(), 0600);
}

std::string ClientExt() {
  return "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
         "extendedKeyUsage=clientAuth\n";
}

std::string Kubeconfig(const std::string& server, const std::string& ca_pem,
                       const std::string& user, const std::string& user_block) {
  std::ostringstream o;
  o << "apiVersion: v1\nkind: Config\nclusters:\n- name: cubelet-test\n  cluster:\n"
    << "    certificate-authority-data: " << Base64Encode(ca_pem) << "\n"
    << "    server: " << server << "\n"
    << "users:\n- name: " << user << "\n  user:\n"
    << user_block << "contexts:\n- name: cubelet-test\n  context:\n    cluster: cubelet-test\n"
    << "    user: " << user << "\ncurrent-context: cubelet-test\npreferences: {}\n";
  return o.str();
}

std::vector<TokenEntry> ReadTokens(const std::string& path) {
  std::vector<TokenEntry> out;
  if (!Exists(path)) return out;
  std::istringstream in(Read(path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::string cur;
    for (char c : line) {
      if (c == ',') {
        f.push_back(cur);
        cur.clear();
      } else if (c != '\r') {
        cur += c;
      }
    }
    f.push_back(cur);
    if (f.size() < 2) continue;
    TokenEntry t{f[0], f[1], f.size() > 2 ? f[2] : "", {}};
    if (f.size() > 3) {
      std::string g;
      for (char c : f[3]) {
        if (c == '|') {
          if (!g.empty()) t.groups.push_back(g);
          g.clear();
        } else if (c != '"') {
          g += c;
        }
      }
      if (!g.empty()) t.groups.push_back(g);
    }
    out.push_back(t);
  }
  return out;
}

std::string JoinGroups(const std::vector<std::string>& g) {
  std::string s;
  for (const auto& x : g) s += (s.empty() ? "" : "|") + x;
  return s;
}

}  // namespace

TlsAssets PrepareAssets(const AssetOptions& opts) {
  const std::string& d = opts.dir;
  auto mk = base::MkdirAll(d, 0700);
  if (!mk) throw std::runtime_error("mkdir " + d + ": " + mk.error().message);
  TlsAssets a;
  a.dir = d;
  a.ca_crt = d + "/ca.crt";
  a.ca_key = d + "/ca.key";
  if (!Exists(a.ca_crt) || !Exists(a.ca_key)) {
    Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
        ShellQuote(a.ca_key) + " -out " + ShellQuote(a.ca_crt) +
        " -days 3650 -sha256 -subj '/CN=cubelet-test-ca' -addext "
        "'basicConstraints=critical,CA:TRUE' -addext "
        "'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'");
    chmod(a.ca_key.c_str(), 0600);
  }
  a.ca_pem = Read(a.ca_crt);

  // Serving certificate: reissued when the set of SANs changes.
  std::string sans = "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                     "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
                     "IP:127.0.0.1";
  if (!opts.service_ip.empty()) sans += ",IP:" + opts.service_ip;
  for (const auto& ip : opts.listen_ips) {
    if (ip == "127.0.0.1" || ip.empty() || ip == "0.0.0.0") continue;
    bool v6 = ip.find(':') != std::string::npos;
    sans += std::string(",") + (v6 || std::isdigit(static_cast<unsigned char>(ip[0])) ? "IP:" : "DNS:") + ip;
  }
  a.serving_crt = d + "/apiserver.crt";
  a.serving_key = d + "/apiserver.key";
  std::string sans_file = d + "/apiserver.sans";
  if (!Exists(a.serving_crt) || !Exists(sans_file) || Read(sans_file) != sans) {
    IssueCert(d, "apiserver", "/CN=kube-apiserver",
              "basicConstraints=critical,CA:FALSE\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=serverAuth\nsubjectAltName=" + sans + "\n");
    Write(sans_file, sans, 0644);
  }

  if (!opts.kubelet_client_cert.empty()) {
    a.kubelet_client_crt = opts.kubelet_client_cert;
    a.kubelet_client_key = opts.kubelet_client_key;
  } else {
    a.kubelet_client_crt = d + "/kubelet-client.crt";
    a.kubelet_client_key = d + "/kubelet-client.key";
    if (!Exists(a.kubelet_client_crt))
      IssueCert(d, "kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
                ClientExt());
  }

  std::string sa_key = d + "/sa.key";
  if (!Exists(sa_key)) {
    Run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
        ShellQuote(sa_key));
    Run("openssl pkey -in " + ShellQuote(sa_key) + " -pubout -out " + ShellQuote(d + "/sa.pub"));
    chmod(sa_key.c_str(), 0600);
  }
  a.sa_key_pem = Read(sa_key);

  // Tokens: keep what is there (tests may add users), add admin and missing nodes.
  std::string tokens_path = d + "/tokens.csv";
  a.tokens = ReadTokens(tokens_path);
  auto find_user = [&](const std::string& user) -> TokenEntry* {
    for (auto& t : a.tokens)
      if (t.user == user) return &t;
    return nullptr;
  };
  bool changed = false;
  if (!find_user("kubernetes-admin")) {
    a.tokens.push_back({RandomToken(), "kubernetes-admin", "admin", {"system:masters"}});
    changed = true;
  }
  for (const auto& n : opts.nodes) {
    if (!find_user("system:node:" + n)) {
      a.tokens.push_back({RandomToken(), "system:node:" + n, "node-" + n, {"system:nodes"}});
      changed = true;
    }
  }
  if (changed || !Exists(tokens_path)) {
    std::string csv;
    for (const auto& t : a.tokens)
      csv += t.token + "," + t.user + "," + t.uid + "," + JoinGroups(t.groups) + "\n";
    Write(tokens_path, csv);
  }

  const std::string& server = opts.server_url;
  Write(d + "/admin.kubeconfig",
        Kubeconfig(server, a.ca_pem, "kubernetes-admin",
                   "    token: " + find_user("kubernetes-admin")->token + "\n"));
  for (const auto& n : opts.nodes) {
    std::string user = "system:node:" + n;
    Write(d + "/node-" + n + ".kubeconfig",
          Kubeconfig(server, a.ca_pem, user, "    token: " + find_user(user)->token + "\n"));
    std::string base = "node-" + n;
    if (!Exists(d + "/" + base + ".crt"))
      IssueCert(d, base, "/O=system:nodes/CN=system:node:" + n, ClientExt());
    Write(d + "/" + base + "-cert.kubeconfig",
          Kubeconfig(server, a.ca_pem, user,
                     "    client-certificate-data: " + Base64Encode(Read(d + "/" + base + ".crt")) +
                         "\n    client-key-data: " + Base64Encode(Read(d + "/" + base + ".key")) +
                         "\n"));
  }
  return a;
}

}  // namespace apiserver
