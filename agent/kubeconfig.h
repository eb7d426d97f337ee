#pragma once
// A standard kubeconfig (clientcmd v1) reduced to what a node agent uses: the current context's
// server, CA and credentials. Paths inside the file are relative to the file's directory.
#include <string>

#include "base/result.h"

namespace agent {

struct Kubeconfig {
  std::string server;                 // "https://10.0.0.1:6443"
  std::string ca_pem;                 // certificate-authority(-data), PEM
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;
  std::string token;                  // token or contents of tokenFile
  std::string token_file;             // re-read on each request when set (bound tokens rotate)
  std::string client_cert_pem;        // client-certificate(-data)
  std::string client_key_pem;         // client-key(-data)
  std::string username, password;     // basic auth (rare)
  std::string namespace_;             // context namespace
  std::string source;                 // file path, for messages
};

// Loads `path`, selecting `context` (empty = current-context). Errors name the file and the field.
base::Result<Kubeconfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

}  // namespace agent
