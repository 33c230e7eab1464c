#pragma once
// The webhook's network side: HTTPS (TLS 1.2/1.3, HTTP/1.1 keep-alive; optionally requiring a
// client certificate) for POST /mutate and plain HTTP for /healthz, /readyz and /metrics. One
// session object per connection on a strand; a worker thread per core runs all sessions. Store
// lookups run on a small separate pool so a slow database never stalls the I/O threads, and each
// review is answered (allowed, untouched) when its lookup has not finished within
// `lookupDeadline`. Connections, header and body sizes, the time to each read and the number of
// large bodies in memory are bounded (ServerOptions).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/metrics.h"
#include "webhook/admission_handler.h"

namespace kcache::webhook {

// The limits are explained, with the reasons for each number, in webhook/README.md.
struct ServerOptions {
  std::string bindAddress = "0.0.0.0";
  uint16_t tlsPort = 8443;   // 0: any free port (tests)
  uint16_t httpPort = 8080;  // 0: any free port; the plain endpoint is always served
  std::filesystem::path certFile;
  std::filesystem::path keyFile;
  // CAs whose client certificates the webhook port requires; empty: no client authentication.
  std::filesystem::path clientCaFile;
  std::size_t ioThreads = 0;  // 0: one per core
  std::size_t lookupThreads = 8;

  // Open connections per port. At the cap a new connection pushes out the one that has waited
  // longest without a request being answered; when all are answering, it is refused.
  std::size_t maxConnections = 512;     // webhook port
  std::size_t maxHttpConnections = 64;  // plain port: probes and scrapes
  // kube-apiserver refuses request bodies above 3 MiB; a review wraps such a pod with room to
  // spare in 4 MiB. The plain port serves only GETs.
  std::size_t bodyLimitBytes = 4 * 1024 * 1024;
  std::size_t httpBodyLimitBytes = 1024;
  std::size_t headerLimitBytes = 16 * 1024;
  std::size_t httpHeaderLimitBytes = 8 * 1024;
  // Bodies above largeBodyBytes (or chunked) are read and decoded at most largeBodySlots at a
  // time; one that waits longer than largeBodyWait for a slot is answered allowed, untouched.
  // One slot: a single hostile 4 MiB review (hundreds of thousands of annotations) takes the
  // process to about 230 MB while it is decoded.
  std::size_t largeBodyBytes = 128 * 1024;
  std::size_t largeBodySlots = 1;
  std::chrono::milliseconds largeBodyWait{1000};

  std::chrono::milliseconds handshakeTimeout{5000};
  // From accepting a connection to the first byte of its first request.
  std::chrono::milliseconds firstRequestTimeout{10000};
  std::chrono::milliseconds headerTimeout{5000};  // from the first byte to the end of the header
  std::chrono::milliseconds bodyTimeout{5000};    // the whole body
  // Between requests on a kept-alive connection: longer than the 90 s after which Go's client
  // (kube-apiserver) drops an idle connection itself, so the server is not the one that closes a
  // connection the client is about to reuse. Idle connections never block others: at the cap
  // they are the first pushed out.
  std::chrono::milliseconds idleTimeout{95000};
  std::chrono::milliseconds writeTimeout{10000};
  // A review whose lookup has not finished after this long is answered allowed, untouched.
  // Slightly above the store's own deadline, so the store's error is normally what is reported.
  std::chrono::milliseconds lookupDeadline{600};
  std::chrono::milliseconds certificatePollInterval{5000};
  std::chrono::milliseconds storeProbeInterval{2000};  // until the store has answered once
  // On stop, how long reviews already being handled may take to be answered.
  std::chrono::milliseconds drainTimeout{5000};
};

class WebhookServer {
 public:
  // Loads the certificate (throws std::runtime_error when it cannot) but does not listen yet.
  WebhookServer(ServerOptions options, AdmissionHandler& handler, core::MetricsRegistry& metrics);
  ~WebhookServer();  // stops
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  // Binds both ports (throws std::system_error naming the address when it cannot) and starts the
  // threads; returns at once.
  void start();
  // Stops accepting, waits (up to drainTimeout) for the reviews being handled to be answered,
  // closes every connection and joins the threads. Idempotent.
  void stop();

  uint16_t tlsPort() const;   // the bound port, after start()
  uint16_t httpPort() const;  // the bound port, after start()
  bool ready() const;         // TLS loaded and the store answered at least once

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kcache::webhook
