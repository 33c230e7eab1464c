#pragma once
// Throwaway TLS material for tests: a self-signed CA whose certificate also serves 127.0.0.1 and
// localhost, and client certificates it signs.
#include <string>

namespace kcache::fakekube {

struct PemPair {
  std::string certificate;
  std::string privateKey;
};

// A CA certificate valid for IP 127.0.0.1 and DNS localhost, usable directly as a server cert.
PemPair makeSelfSignedServerCa(const std::string& commonName = "kcache-fakekube");

// A client certificate (extendedKeyUsage clientAuth) signed by `ca`.
PemPair issueClientCertificate(const PemPair& ca, const std::string& commonName);

}  // namespace kcache::fakekube
