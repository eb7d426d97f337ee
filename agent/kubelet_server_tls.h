#pragma once
// TLS pieces of the kubelet server (internal): the serving context, the self-signed serving
// certificate the kubelet makes when no --tls-cert-file is given, and x509 client-cert
// authentication against --client-ca-file.
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/kubelet_server.h"
#include "base/result.h"

namespace agent::kserver {

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Writes a self-signed serving cert (ECDSA P-256, 1 year, EKU serverAuth) for `sans` (IPs
// become IP SANs, the rest DNS SANs) with CN "<cn>@<unix time>" (as the kubelet names it).
// Key file mode 0600. Overwrites existing files.
base::Result<> WriteSelfSignedCert(const std::string& cert_path, const std::string& key_path,
                                   const std::string& cn, const std::vector<std::string>& sans);

// TLS >= 1.2 server context. Client certs are requested but not required: a connection without
// one (or with one that fails verification) is still served and answered 401, as the kubelet
// does. Empty client_ca_file: no client cert is ever accepted.
base::Result<SslCtxPtr> MakeServerContext(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file);

// After the handshake: the authenticated user of a verified client cert (name = CN,
// groups = O), or an empty name with *why saying what was wrong.
UserInfo ClientCertUser(SSL* ssl, std::string* why);

}  // namespace agent::kserver
