// RS256 JWTs for TokenRequest, signed with OpenSSL's EVP API.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>

#include "tests/apiserver/internal.h"
#include "tests/apiserver/util.h"

namespace apiserver::internal {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::unique_ptr<EVP_PKEY, PkeyFree> LoadKey(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!key) throw std::runtime_error("cannot parse service account signing key");
  return std::unique_ptr<EVP_PKEY, PkeyFree>(key);
}

// kid as kube-apiserver computes it: base64url(sha256(DER SubjectPublicKeyInfo)).
std::string KeyId(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return "";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  return Base64UrlEncode(std::string(reinterpret_cast<char*>(digest), sizeof(digest)));
}

}  // namespace

std::string SignServiceAccountToken(const std::string& key_pem, const Json& claims) {
  auto key = LoadKey(key_pem);
  Json header = {{"alg", "RS256"}, {"kid", KeyId(key.get())}};
  std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    throw std::runtime_error("cannot sign service account token");
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    throw std::runtime_error("cannot sign service account token");
  sig.resize(sig_len);
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace apiserver::internal
