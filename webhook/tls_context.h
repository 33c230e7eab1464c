#pragma once
// The server's TLS configuration (TLS 1.2 and 1.3 only) and its reloading: the certificate and
// key files are watched by modification time and size; when they change, a new context is built
// and handed to new connections, while live connections keep the context they started with.
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace kcache::webhook {

// Builds a server context from PEM files. Throws std::runtime_error naming the file on failure
// (missing, unreadable, not PEM, key not matching the certificate).
std::shared_ptr<boost::asio::ssl::context> makeServerTlsContext(
    const std::filesystem::path& certFile, const std::filesystem::path& keyFile);

class ReloadingTlsContext {
 public:
  // Loads the files now; throws like makeServerTlsContext.
  ReloadingTlsContext(std::filesystem::path certFile, std::filesystem::path keyFile);

  // The context for a new connection.
  std::shared_ptr<boost::asio::ssl::context> current() const;

  enum class ReloadResult { kUnchanged, kReloaded, kFailed };
  // Reloads when either file changed since the last load. On failure (for instance a
  // half-written file) the old context stays and the same change is not retried until the files
  // change again.
  ReloadResult reloadIfChanged();

  const std::filesystem::path& certFile() const { return certFile_; }
  const std::filesystem::path& keyFile() const { return keyFile_; }

 private:
  struct FileStamp {
    std::filesystem::file_time_type modified{};
    std::uintmax_t size = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static std::optional<FileStamp> stampOf(const std::filesystem::path& file);

  std::filesystem::path certFile_;
  std::filesystem::path keyFile_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::optional<FileStamp> certStamp_, keyStamp_;  // of the last attempt
};

}  // namespace kcache::webhook
