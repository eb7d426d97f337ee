#include "netproxy/chain_names.h"

#include <openssl/evp.h>

#include <array>

namespace netproxy {

namespace {

// First 16 characters of the standard (RFC 4648) base32 encoding of sha256(data): 80 bits,
// i.e. exactly the first 10 digest bytes, so padding never matters.
std::string Hash16(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  out.reserve(16);
  uint64_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < 10; ++i) {
    buffer = (buffer << 8) | digest[i];
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 0x1f]);
      bits -= 5;
    }
  }
  return out;
}

std::string Concat(std::string_view a, std::string_view b, std::string_view c = {}) {
  std::string s;
  s.reserve(a.size() + b.size() + c.size());
  s.append(a).append(b).append(c);
  return s;
}

}  // namespace

std::string PortProtoHash(std::string_view name, std::string_view protocol) {
  return Hash16(Concat(name, protocol));
}

std::string ServiceChainName(std::string_view name, std::string_view protocol) {
  return Concat(kServiceChainPrefix, PortProtoHash(name, protocol));
}
std::string LocalChainName(std::string_view name, std::string_view protocol) {
  return Concat(kLocalChainPrefix, PortProtoHash(name, protocol));
}
std::string FirewallChainName(std::string_view name, std::string_view protocol) {
  return Concat(kFirewallChainPrefix, PortProtoHash(name, protocol));
}
std::string ExternalChainName(std::string_view name, std::string_view protocol) {
  return Concat(kExternalChainPrefix, PortProtoHash(name, protocol));
}
std::string EndpointChainName(std::string_view name, std::string_view protocol,
                              std::string_view endpoint) {
  return Concat(kEndpointChainPrefix, Hash16(Concat(name, protocol, endpoint)));
}

bool IsServiceChainName(std::string_view chain) {
  for (std::string_view p : {kServiceChainPrefix, kLocalChainPrefix, kFirewallChainPrefix,
                             kExternalChainPrefix, kEndpointChainPrefix}) {
    if (chain.substr(0, p.size()) == p) return true;
  }
  return false;
}

}  // namespace netproxy
