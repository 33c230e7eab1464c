#pragma once
// A real WebhookServer on 127.0.0.1 (free ports) with a fresh self-signed certificate.
#include <gtest/gtest.h>

#include <memory>

#include "core/metrics.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_handler.h"
#include "webhook/server.h"

namespace kcache::webhook::testing {

class RunningServer {
 public:
  RunningServer(store::CacheLookup& lookup, AdmissionConfig config = {},
                ServerOptions options = defaultOptions(), KeyType keyType = KeyType::kEcdsa)
      : certFile_(dir_.path() / "cert.pem"), keyFile_(dir_.path() / "key.pem") {
    writeSelfSignedCertificate(certFile_, keyFile_, "kcache-test-1", keyType);
    trusted_.push_back(dir_.path() / "trusted-kcache-test-1.pem");
    std::filesystem::copy_file(certFile_, trusted_.back());
    handler_ = std::make_unique<AdmissionHandler>(std::move(config), lookup, metrics_);
    options.certFile = certFile_;
    options.keyFile = keyFile_;
    server_ = std::make_unique<WebhookServer>(options, *handler_, metrics_);
    server_->start();
  }
  ~RunningServer() { server_->stop(); }

  static ServerOptions defaultOptions() {
    ServerOptions options;
    options.bindAddress = "127.0.0.1";
    options.tlsPort = 0;
    options.httpPort = 0;
    options.ioThreads = 2;
    options.lookupThreads = 2;
    options.handshakeTimeout = std::chrono::milliseconds(1000);
    options.headerTimeout = std::chrono::milliseconds(500);
    options.bodyTimeout = std::chrono::milliseconds(2000);
    options.idleTimeout = std::chrono::milliseconds(5000);
    options.lookupDeadline = std::chrono::milliseconds(300);
    options.certificatePollInterval = std::chrono::milliseconds(50);
    options.storeProbeInterval = std::chrono::milliseconds(50);
    return options;
  }

  std::unique_ptr<HttpsClient> client(
      const std::optional<ClientCertificate>& clientCertificate = std::nullopt) {
    // Trusts every certificate this server ever had, so rotation is observed, not a failure.
    return std::make_unique<HttpsClient>(server_->tlsPort(), trusted_, clientCertificate);
  }
  // Replaces the certificate files with a new certificate for `commonName`.
  void rotateCertificate(const std::string& commonName) {
    const auto newCert = dir_.path() / ("trusted-" + commonName + ".pem");
    writeSelfSignedCertificate(dir_.path() / "staged-cert.pem", dir_.path() / "staged-key.pem",
                               commonName);
    std::filesystem::copy_file(dir_.path() / "staged-cert.pem", newCert);
    trusted_.push_back(newCert);
    std::filesystem::rename(dir_.path() / "staged-key.pem", keyFile_);
    std::filesystem::rename(dir_.path() / "staged-cert.pem", certFile_);
  }

  WebhookServer& server() { return *server_; }
  core::MetricsRegistry& metrics() { return metrics_; }
  double counter(const std::string& name, const core::MetricLabels& labels = {}) {
    return metrics_.counter(name, "", labels).value();
  }
  const std::filesystem::path& certFile() const { return certFile_; }

 private:
  TempDir dir_;
  std::filesystem::path certFile_, keyFile_;
  std::vector<std::filesystem::path> trusted_;
  core::MetricsRegistry metrics_;
  std::unique_ptr<AdmissionHandler> handler_;
  std::unique_ptr<WebhookServer> server_;
};

}  // namespace kcache::webhook::testing
