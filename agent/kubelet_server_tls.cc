#include "agent/kubelet_server_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>

#include "base/file.h"
#include "base/scope_guard.h"

namespace agent::kserver {
namespace {

std::string OpensslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

tl::unexpected<base::Error> SslFail(const std::string& what) {
  return base::Fail(what + ": " + OpensslError());
}

bool IsIp(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool AddExt(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

template <class F>
base::Result<std::string> ToPem(F write) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return SslFail("BIO_new");
  auto free_bio = base::Defer([&] { BIO_free(bio); });
  if (write(bio) != 1) return SslFail("PEM encode");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

// Accept every presented chain during the handshake; the verdict is read afterwards with
// SSL_get_verify_result so that a bad or missing cert yields a 401, not a TLS alert.
int AcceptAnyChain(int, X509_STORE_CTX*) { return 1; }

std::vector<std::string> NameEntries(X509_NAME* name, int nid) {
  std::vector<std::string> out;
  int idx = -1;
  while ((idx = X509_NAME_get_index_by_NID(name, nid, idx)) >= 0) {
    ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n >= 0) {
      out.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
      OPENSSL_free(utf8);
    }
  }
  return out;
}

}  // namespace

base::Result<> WriteSelfSignedCert(const std::string& cert_path, const std::string& key_path,
                                   const std::string& cn, const std::vector<std::string>& sans) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!key) return SslFail("generate serving key");
  auto free_key = base::Defer([&] { EVP_PKEY_free(key); });
  X509* cert = X509_new();
  if (!cert) return SslFail("X509_new");
  auto free_cert = base::Defer([&] { X509_free(cert); });

  X509_set_version(cert, 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return SslFail("random serial");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600);
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::string subject_cn = cn + "@" + std::to_string(now);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(subject_cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);

  std::string san;
  for (const auto& s : sans) {
    if (s.empty()) continue;
    if (!san.empty()) san += ",";
    san += (IsIp(s) ? "IP:" : "DNS:") + s;
  }
  if (!AddExt(cert, NID_basic_constraints, "critical,CA:FALSE") ||
      !AddExt(cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
      !AddExt(cert, NID_ext_key_usage, "serverAuth") ||
      !AddExt(cert, NID_subject_key_identifier, "hash") ||
      (!san.empty() && !AddExt(cert, NID_subject_alt_name, san))) {
    return SslFail("add extensions to serving cert (SANs \"" + san + "\")");
  }
  if (X509_sign(cert, key, EVP_sha256()) == 0) return SslFail("sign serving cert");

  auto cert_pem = ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert); });
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  auto key_pem = ToPem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  if (!key_pem) return tl::unexpected(key_pem.error());
  CUBELET_TRY_CTX(base::WriteFileAtomic(key_path, *key_pem, 0600), "write " + key_path);
  CUBELET_TRY_CTX(base::WriteFileAtomic(cert_path, *cert_pem, 0644), "write " + cert_path);
  return {};
}

base::Result<SslCtxPtr> MakeServerContext(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return SslFail("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return SslFail("load serving cert \"" + cert_file + "\"");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return SslFail("load serving key \"" + key_file + "\"");
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return SslFail("serving key \"" + key_file + "\" does not match cert \"" + cert_file + "\"");
  }
  static const unsigned char kSessionContext[] = "cubelet-kubelet-server";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof kSessionContext - 1);
  if (!client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), client_ca_file.c_str(), nullptr) != 1) {
      return SslFail("load client CA \"" + client_ca_file + "\"");
    }
    // Tell clients which CAs we accept (Go and curl pick their cert by this list if they can).
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, AcceptAnyChain);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

UserInfo ClientCertUser(SSL* ssl, std::string* why) {
  UserInfo user;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) {
    *why = "no client certificate";
    return user;
  }
  auto free_cert = base::Defer([&] { X509_free(cert); });
  if (SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE) {
    *why = "client certificates are not accepted (no --client-ca-file)";
    return user;
  }
  long rc = SSL_get_verify_result(ssl);
  if (rc != X509_V_OK) {
    *why = std::string("client certificate not verified: ") + X509_verify_cert_error_string(rc);
    return user;
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  auto cns = NameEntries(subject, NID_commonName);
  if (cns.empty() || cns.front().empty()) {
    *why = "client certificate has no common name";
    return user;
  }
  user.name = cns.front();
  user.groups = NameEntries(subject, NID_organizationName);
  return user;
}

}  // namespace agent::kserver
