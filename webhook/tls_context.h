#pragma once
// The server's TLS configuration and its reloading.
//
// Policy: TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM,
// ChaCha20-Poly1305), so every session has forward secrecy and no CBC construction is offered;
// TLS 1.3 with OpenSSL's suites (all AEAD); no renegotiation; no compression. Go's TLS client
// (kube-apiserver) offers all of these. With a client CA, a client certificate chaining to it is
// required: without one the handshake fails, so no HTTP request is ever read.
//
// Reloading: the certificate, key and client CA files are watched by modification time and size;
// when one changes, a new context is built and handed to new connections, while live connections
// keep the context they started with.
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

namespace kcache::webhook {

// The TLS 1.2 cipher suites the server accepts, in OpenSSL's names, most preferred first.
inline constexpr const char* kTls12CipherList =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct TlsFiles {
  std::filesystem::path certFile;
  std::filesystem::path keyFile;
  // PEM bundle of the CAs whose client certificates are accepted; empty: no client
  // authentication.
  std::filesystem::path clientCaFile;
};

// Builds a server context from PEM files. Throws std::runtime_error naming the file on failure
// (missing, unreadable, not PEM, key not matching the certificate, no CA in the client CA file).
std::shared_ptr<boost::asio::ssl::context> makeServerTlsContext(const TlsFiles& files);
inline std::shared_ptr<boost::asio::ssl::context> makeServerTlsContext(
    const std::filesystem::path& certFile, const std::filesystem::path& keyFile) {
  return makeServerTlsContext(TlsFiles{certFile, keyFile, {}});
}

class ReloadingTlsContext {
 public:
  // Loads the files now; throws like makeServerTlsContext.
  explicit ReloadingTlsContext(TlsFiles files);

  // The context for a new connection.
  std::shared_ptr<boost::asio::ssl::context> current() const;

  enum class ReloadResult { kUnchanged, kReloaded, kFailed };
  // Reloads when any of the files changed since the last load. On failure (for instance a
  // half-written file) the old context stays and the same change is not retried until the files
  // change again.
  ReloadResult reloadIfChanged();

  const TlsFiles& files() const { return files_; }

 private:
  struct FileStamp {
    std::filesystem::file_time_type modified{};
    std::uintmax_t size = 0;
    bool operator==(const FileStamp&) const = default;
  };
  using Stamps = std::vector<std::optional<FileStamp>>;
  static std::optional<FileStamp> stampOf(const std::filesystem::path& file);
  Stamps stamps() const;

  TlsFiles files_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  Stamps stamps_;  // of the last attempt
};

}  // namespace kcache::webhook
