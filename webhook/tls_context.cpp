#include "webhook/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <system_error>

namespace kcache::webhook {

namespace ssl = boost::asio::ssl;

std::shared_ptr<ssl::context> makeServerTlsContext(const std::filesystem::path& certFile,
                                                   const std::filesystem::path& keyFile) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    throw std::runtime_error("could not restrict TLS to version 1.2 and later");
  }
  boost::system::error_code error;
  context->use_certificate_chain_file(certFile.string(), error);
  if (error) {
    throw std::runtime_error("could not load the TLS certificate " + certFile.string() + ": " +
                             error.message());
  }
  context->use_private_key_file(keyFile.string(), ssl::context::pem, error);
  if (error) {
    throw std::runtime_error("could not load the TLS key " + keyFile.string() + ": " +
                             error.message());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw std::runtime_error("the TLS key " + keyFile.string() +
                             " does not match the certificate " + certFile.string());
  }
  return context;
}

ReloadingTlsContext::ReloadingTlsContext(std::filesystem::path certFile,
                                         std::filesystem::path keyFile)
    : certFile_(std::move(certFile)), keyFile_(std::move(keyFile)) {
  certStamp_ = stampOf(certFile_);
  keyStamp_ = stampOf(keyFile_);
  context_ = makeServerTlsContext(certFile_, keyFile_);
}

std::shared_ptr<ssl::context> ReloadingTlsContext::current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

std::optional<ReloadingTlsContext::FileStamp> ReloadingTlsContext::stampOf(
    const std::filesystem::path& file) {
  std::error_code error;
  // last_write_time follows symlinks, so the "..data" swap of a Kubernetes secret volume counts.
  const auto modified = std::filesystem::last_write_time(file, error);
  if (error) return std::nullopt;
  const auto size = std::filesystem::file_size(file, error);
  if (error) return std::nullopt;
  return FileStamp{modified, size};
}

ReloadingTlsContext::ReloadResult ReloadingTlsContext::reloadIfChanged() {
  const auto certStamp = stampOf(certFile_);
  const auto keyStamp = stampOf(keyFile_);
  {
    std::lock_guard lock(mutex_);
    if (certStamp == certStamp_ && keyStamp == keyStamp_) return ReloadResult::kUnchanged;
    certStamp_ = certStamp;
    keyStamp_ = keyStamp;
  }
  try {
    auto context = makeServerTlsContext(certFile_, keyFile_);
    std::lock_guard lock(mutex_);
    context_ = std::move(context);
    return ReloadResult::kReloaded;
  } catch (const std::exception& error) {
    spdlog::warn("TLS certificate change not applied, keeping the previous one: {}", error.what());
    return ReloadResult::kFailed;
  }
}

}  // namespace kcache::webhook
