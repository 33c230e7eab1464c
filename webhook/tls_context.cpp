#include "webhook/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <system_error>

namespace kcache::webhook {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure, and the error queue cleared.
std::string lastOpenSslError() {
  const unsigned long code = ERR_peek_last_error();
  const char* reason = code == 0 ? nullptr : ERR_reason_error_string(code);
  ERR_clear_error();
  return reason == nullptr ? "unknown error" : reason;
}

// Client certificates must chain to a CA of `caFile`; the CAs' names are sent to the client so it
// can pick the right certificate.
void requireClientCertificates(SSL_CTX* native, const std::filesystem::path& caFile) {
  if (SSL_CTX_load_verify_locations(native, caFile.c_str(), nullptr) != 1) {
    throw std::runtime_error("could not load the client CA file " + caFile.string() + ": " +
                             lastOpenSslError());
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(caFile.c_str());
  if (names == nullptr || sk_X509_NAME_num(names) == 0) {
    if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
    ERR_clear_error();
    throw std::runtime_error("the client CA file " + caFile.string() + " holds no PEM certificate");
  }
  SSL_CTX_set_client_CA_list(native, names);  // takes ownership
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // Session resumption with peer verification needs a context id; a resumed session was
  // verified when it was made.
  static constexpr unsigned char kSessionContext[] = "kcache-webhook";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
}

}  // namespace

std::shared_ptr<ssl::context> makeServerTlsContext(const TlsFiles& files) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use | ssl::context::no_compression);
  SSL_CTX* native = context->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    throw std::runtime_error("could not restrict TLS to version 1.2 and later");
  }
  // A renegotiation is a second handshake inside the first: nothing kcache's clients need, and a
  // way to make the server do handshake work without opening connections.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(native, kTls12CipherList) != 1) {
    throw std::runtime_error("could not restrict the TLS 1.2 cipher suites: " + lastOpenSslError());
  }
  boost::system::error_code error;
  context->use_certificate_chain_file(files.certFile.string(), error);
  if (error) {
    throw std::runtime_error("could not load the TLS certificate " + files.certFile.string() +
                             ": " + error.message());
  }
  context->use_private_key_file(files.keyFile.string(), ssl::context::pem, error);
  if (error) {
    throw std::runtime_error("could not load the TLS key " + files.keyFile.string() + ": " +
                             error.message());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw std::runtime_error("the TLS key " + files.keyFile.string() +
                             " does not match the certificate " + files.certFile.string());
  }
  if (!files.clientCaFile.empty()) requireClientCertificates(native, files.clientCaFile);
  return context;
}

ReloadingTlsContext::ReloadingTlsContext(TlsFiles files) : files_(std::move(files)) {
  stamps_ = stamps();
  context_ = makeServerTlsContext(files_);
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

ReloadingTlsContext::Stamps ReloadingTlsContext::stamps() const {
  Stamps result{stampOf(files_.certFile), stampOf(files_.keyFile)};
  if (!files_.clientCaFile.empty()) result.push_back(stampOf(files_.clientCaFile));
  return result;
}

ReloadingTlsContext::ReloadResult ReloadingTlsContext::reloadIfChanged() {
  auto current = stamps();
  {
    std::lock_guard lock(mutex_);
    if (current == stamps_) return ReloadResult::kUnchanged;
    stamps_ = std::move(current);
  }
  try {
    auto context = makeServerTlsContext(files_);
    std::lock_guard lock(mutex_);
    context_ = std::move(context);
    return ReloadResult::kReloaded;
  } catch (const std::exception& error) {
    spdlog::warn("TLS files changed but were not applied, keeping the previous ones: {}",
                 error.what());
    return ReloadResult::kFailed;
  }
}

}  // namespace kcache::webhook
