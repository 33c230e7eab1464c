#include "webhook/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "webhook/tls_context.h"

namespace kcache::webhook {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

constexpr std::string_view kMutatePath = "/mutate";
// The first read of a request takes a whole TLS record (16 KiB at most): a ~9 KB review then
// usually arrives in one read instead of three.
constexpr std::size_t kFirstReadBytes = 16 * 1024;

// What every session needs; owned by the server and outliving all sessions.
struct Shared {
  Shared(const ServerOptions& options, AdmissionHandler& handler, core::MetricsRegistry& metrics,
         net::thread_pool& lookupPool, ReloadingTlsContext& tls)
      : options(options),
        handler(handler),
        metrics(metrics),
        lookupPool(lookupPool),
        tls(tls),
        handshakeFailures(metrics.counter("kcache_tls_handshake_failures_total",
                                          "TLS handshakes that failed or timed out.")),
        openConnections(metrics.gauge("kcache_webhook_open_connections",
                                      "Connections currently open, both ports.")),
        okResponses(responsesCounter(200)) {}

  void countResponse(unsigned status) {
    // Every review answers 200: its counter is kept rather than looked up by name each time.
    if (status == 200) {
      okResponses.inc();
      return;
    }
    responsesCounter(status).inc();
  }
  core::Counter& responsesCounter(unsigned status) {
    return metrics.counter("kcache_webhook_http_responses_total",
                           "HTTP responses sent, by status code.",
                           {{"code", std::to_string(status)}});
  }
  bool ready() const { return handler.storeAnswered(); }

  const ServerOptions& options;
  std::atomic<int> requestsInFlight{0};  // read completely, not yet answered (for draining)
  AdmissionHandler& handler;
  core::MetricsRegistry& metrics;
  net::thread_pool& lookupPool;
  ReloadingTlsContext& tls;
  core::Counter& handshakeFailures;
  core::Gauge& openConnections;
  core::Counter& okResponses;
};

std::string_view pathOf(std::string_view target) {
  return target.substr(0, std::min(target.find('?'), target.size()));
}

// application/json, with or without parameters such as "; charset=utf-8", in any letter case.
bool isJsonContentType(std::string_view value) {
  const auto mediaType = value.substr(0, std::min(value.find(';'), value.size()));
  auto trimmed = mediaType;
  while (!trimmed.empty() && trimmed.back() == ' ') trimmed.remove_suffix(1);
  while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
  constexpr std::string_view kJson = "application/json";
  return trimmed.size() == kJson.size() &&
         std::equal(trimmed.begin(), trimmed.end(), kJson.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

// One connection. Stream is beast::tcp_stream (plain) or beast::ssl_stream<beast::tcp_stream>.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(Shared& shared, tcp::socket socket, std::shared_ptr<ssl::context> context = {})
      : shared_(shared),
        context_(std::move(context)),
        stream_(makeStream(std::move(socket), context_)),
        lookupTimer_(stream_.get_executor()) {
    shared_.openConnections.add(1);
  }
  ~Session() { shared_.openConnections.add(-1); }

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->lowest().expires_after(self->shared_.options.handshakeTimeout);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code error) {
          self->onHandshake(error);
        });
      } else {
        self->readRequest();
      }
    });
  }

 private:
  static Stream makeStream(tcp::socket socket, const std::shared_ptr<ssl::context>& context) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *context);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void onHandshake(beast::error_code error) {
    if (error) {
      shared_.handshakeFailures.inc();
      spdlog::debug("TLS handshake failed: {}", error.message());
      return;  // the socket closes with the session
    }
    readRequest();
  }

  void readRequest() {
    // The body's storage is handed from one request's parser to the next: a review is ~9 KB,
    // and allocating it anew for every request showed in the profile.
    std::string bodyStorage;
    if (parser_) bodyStorage = std::move(parser_->get().body());
    bodyStorage.clear();
    parser_.emplace();
    parser_->get().body() = std::move(bodyStorage);
    parser_->body_limit(shared_.options.bodyLimitBytes);
    parser_->header_limit(static_cast<std::uint32_t>(shared_.options.headerLimitBytes));
    if (buffer_.size() > 0) {
      readHeader();
      return;
    }
    // Idle until the next request starts; only then does the header deadline run.
    lowest().expires_after(shared_.options.idleTimeout);
    stream_.async_read_some(
        buffer_.prepare(kFirstReadBytes),
        [self = this->shared_from_this()](beast::error_code error, std::size_t bytes) {
          if (error) {
            self->close();
            return;
          }
          self->buffer_.commit(bytes);
          self->readHeader();
        });
  }

  void readHeader() {
    lowest().expires_after(shared_.options.headerTimeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code error, std::size_t) {
          if (error) {
            self->onReadError(error);
            return;
          }
          self->readBody();
        });
  }

  void readBody() {
    started_ = AdmissionHandler::Clock::now();
    lowest().expires_after(shared_.options.bodyTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code error, std::size_t) {
                       if (error) {
                         self->onReadError(error);
                         return;
                       }
                       self->route();
                     });
  }

  void onReadError(beast::error_code error) {
    if (error == http::error::body_limit) {
      sendText(http::status::payload_too_large,
               "request body exceeds the limit of " +
                   std::to_string(shared_.options.bodyLimitBytes) + " bytes\n",
               /*close=*/true);
      return;
    }
    if (error == http::error::header_limit) {
      sendText(http::status::request_header_fields_too_large, "request header too large\n", true);
      return;
    }
    if (error.category() == beast::error_code(http::error::end_of_stream).category() &&
        error != http::error::end_of_stream && error != http::error::partial_message) {
      sendText(http::status::bad_request, "malformed HTTP request: " + error.message() + "\n",
               true);
      return;
    }
    // Timeouts, resets, a client that went away: nothing sensible to answer.
    close();
  }

  void route() {
    requestInFlight_ = true;
    shared_.requestsInFlight.fetch_add(1);
    auto& request = parser_->get();
    const auto path = pathOf(std::string_view(request.target().data(), request.target().size()));
    if (path == "/healthz") {
      sendText(http::status::ok, "ok\n");
    } else if (path == "/readyz") {
      if (shared_.ready()) {
        sendText(http::status::ok, "ready\n");
      } else {
        sendText(http::status::service_unavailable, "not ready: the store has not answered yet\n");
      }
    } else if (!kTls && path == "/metrics") {
      if (request.method() != http::verb::get && request.method() != http::verb::head) {
        sendText(http::status::method_not_allowed, "only GET is allowed\n", false, "GET");
        return;
      }
      send(http::status::ok, shared_.metrics.renderPrometheusText(),
           "text/plain; version=0.0.4; charset=utf-8");
    } else if (kTls && path == kMutatePath) {
      routeReview();
    } else {
      sendText(http::status::not_found, "no such path: " + std::string(path) + "\n");
    }
  }

  void routeReview() {
    auto& request = parser_->get();
    if (request.method() != http::verb::post) {
      sendText(http::status::method_not_allowed,
               "invalid method " + std::string(request.method_string()) +
                   ", only POST requests are allowed\n",
               false, "POST");
      return;
    }
    const auto contentType = request[http::field::content_type];
    if (!isJsonContentType(std::string_view(contentType.data(), contentType.size()))) {
      sendText(http::status::unsupported_media_type, "unsupported content type \"" +
                                                         std::string(contentType) +
                                                         "\", only application/json is accepted\n");
      return;
    }
    auto prepared = shared_.handler.prepare(request.body(), started_);
    if (auto* answer = std::get_if<ReviewAnswer>(&prepared)) {
      sendAnswer(*answer);
      return;
    }
    auto& pending = std::get<PendingLookup>(prepared);
    // A recent hit remembered in memory is answered here, without the round trip through the
    // lookup pool and its deadline timer.
    if (auto answer = shared_.handler.completeFromMemory(pending, started_)) {
      sendAnswer(*answer);
      return;
    }
    lookUpThenAnswer(std::make_shared<PendingLookup>(std::move(pending)));
  }

  // The lookup runs on the lookup pool; whichever comes first, its answer or the deadline,
  // answers the review. `answered` makes sure only one of them does.
  void lookUpThenAnswer(std::shared_ptr<PendingLookup> pending) {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    const auto started = started_;
    lookupTimer_.expires_after(shared_.options.lookupDeadline);
    lookupTimer_.async_wait(
        [self = this->shared_from_this(), pending, answered, started](beast::error_code error) {
          if (error || answered->exchange(true)) return;
          self->sendAnswer(self->shared_.handler.abandon(
              *pending, started,
              "did not finish within " +
                  std::to_string(self->shared_.options.lookupDeadline.count()) + " ms"));
        });
    net::post(shared_.lookupPool, [self = this->shared_from_this(), pending, answered, started] {
      auto answer = self->shared_.handler.complete(
          *pending, started, [&answered] { return !answered->exchange(true); });
      if (!answer) return;
      net::post(self->stream_.get_executor(), [self, answer = std::move(*answer)] {
        self->lookupTimer_.cancel();
        self->sendAnswer(answer);
      });
    });
  }

  void sendAnswer(const ReviewAnswer& answer) {
    if (answer.httpStatus == 200) {
      send(http::status::ok, answer.body, "application/json");
    } else {
      send(static_cast<http::status>(answer.httpStatus), answer.body, "text/plain; charset=utf-8");
    }
  }

  void sendText(http::status status, std::string body, bool close = false,
                std::string_view allow = {}) {
    send(status, body, "text/plain; charset=utf-8", close, allow);
  }

  void send(http::status status, std::string_view body, std::string_view contentType,
            bool close = false, std::string_view allow = {}) {
    const auto& request = parser_->get();
    closeAfterWrite_ = close || !request.keep_alive();
    writeResponse(request.version() == 0 ? 11 : request.version(), status, body, contentType, allow,
                  !closeAfterWrite_);
    shared_.countResponse(static_cast<unsigned>(status));
    lowest().expires_after(shared_.options.writeTimeout);
    net::async_write(stream_, net::buffer(out_),
                     [self = this->shared_from_this()](beast::error_code error, std::size_t) {
                       if (self->requestInFlight_) {
                         self->requestInFlight_ = false;
                         self->shared_.requestsInFlight.fetch_sub(1);
                       }
                       if (error || self->closeAfterWrite_) {
                         self->close();
                         return;
                       }
                       self->readRequest();
                     });
  }

  // The response as Beast would serialize it (same status line, fields in the same order), into
  // one buffer kept for the connection: the answer then leaves as one TLS record in one write
  // instead of a header and a body gathered by the serializer for every response.
  void writeResponse(unsigned version, http::status status, std::string_view body,
                     std::string_view contentType, std::string_view allow, bool keepAlive) {
    const auto reason = http::obsolete_reason(status);
    out_.clear();
    out_ += "HTTP/";
    out_ += static_cast<char>('0' + version / 10);
    out_ += '.';
    out_ += static_cast<char>('0' + version % 10);
    out_ += ' ';
    out_ += std::to_string(static_cast<unsigned>(status));
    out_ += ' ';
    out_.append(reason.data(), reason.size());
    out_ += "\r\nServer: kcache\r\nContent-Type: ";
    out_ += contentType;
    if (!allow.empty()) {
      out_ += "\r\nAllow: ";
      out_ += allow;
    }
    // Beast's keep_alive(): HTTP/1.0 says keep-alive, HTTP/1.1 says close.
    if (version < 11 && keepAlive) out_ += "\r\nConnection: keep-alive";
    if (version >= 11 && !keepAlive) out_ += "\r\nConnection: close";
    out_ += "\r\nContent-Length: ";
    out_ += std::to_string(body.size());
    out_ += "\r\n\r\n";
    out_ += body;
  }

  void close() {
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        self->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Shared& shared_;
  std::shared_ptr<ssl::context> context_;  // before stream_: the stream refers to it
  Stream stream_;
  net::steady_timer lookupTimer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;  // the response being written
  bool closeAfterWrite_ = false;
  bool requestInFlight_ = false;
  AdmissionHandler::Clock::time_point started_;
};

}  // namespace

class WebhookServer::Impl {
 public:
  Impl(ServerOptions options, AdmissionHandler& handler, core::MetricsRegistry& metrics)
      : options_(std::move(options)),
        handler_(handler),
        metrics_(metrics),
        tls_(options_.certFile, options_.keyFile),
        lookupPool_(std::max<std::size_t>(1, options_.lookupThreads)),
        shared_(options_, handler, metrics, lookupPool_, tls_),
        tlsAcceptor_(ioContext_),
        httpAcceptor_(ioContext_),
        certificateTimer_(ioContext_),
        probeTimer_(ioContext_),
        certificateReloads_(metrics.counter("kcache_tls_certificate_reloads_total",
                                            "Certificate reloads after the files changed.",
                                            {{"result", "success"}})),
        certificateReloadFailures_(metrics.counter("kcache_tls_certificate_reloads_total",
                                                   "Certificate reloads after the files changed.",
                                                   {{"result", "failure"}})) {}

  ~Impl() { stop(); }

  void start() {
    const auto address = net::ip::make_address(options_.bindAddress);
    listen(tlsAcceptor_, tcp::endpoint(address, options_.tlsPort), "TLS");
    listen(httpAcceptor_, tcp::endpoint(address, options_.httpPort), "HTTP");
    acceptTls();
    acceptHttp();
    scheduleCertificatePoll();
    scheduleStoreProbe(std::chrono::milliseconds(0));
    const std::size_t threads = options_.ioThreads > 0
                                    ? options_.ioThreads
                                    : std::max(1u, std::thread::hardware_concurrency());
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { ioContext_.run(); });
    }
    spdlog::info(
        "webhook listening: https://{}:{}{} (certificate {}), http://{}:{} (/healthz /readyz "
        "/metrics), {} I/O threads, {} lookup threads",
        options_.bindAddress, tlsPort(), kMutatePath, options_.certFile.string(),
        options_.bindAddress, httpPort(), threads, options_.lookupThreads);
  }

  void stop() {
    std::lock_guard lock(stopMutex_);
    if (stopped_) return;
    stopped_ = true;
    // Stop accepting, let the reviews already read be answered (bounded), then cut the rest.
    std::promise<void> closed;
    net::post(ioContext_, [this, &closed] {
      beast::error_code ignored;
      tlsAcceptor_.close(ignored);
      httpAcceptor_.close(ignored);
      certificateTimer_.cancel();
      probeTimer_.cancel();
      closed.set_value();
    });
    if (!threads_.empty()) {
      closed.get_future().wait();
      const auto deadline = std::chrono::steady_clock::now() + options_.drainTimeout;
      while (shared_.requestsInFlight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    ioContext_.stop();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    lookupPool_.join();
  }

  uint16_t tlsPort() const { return tlsPort_; }
  uint16_t httpPort() const { return httpPort_; }
  bool ready() const { return shared_.ready(); }

 private:
  void listen(tcp::acceptor& acceptor, const tcp::endpoint& endpoint, const char* what) {
    try {
      acceptor.open(endpoint.protocol());
      acceptor.set_option(net::socket_base::reuse_address(true));
      acceptor.bind(endpoint);
      acceptor.listen(net::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& error) {
      throw std::system_error(error.code(), std::string("cannot listen for ") + what + " on " +
                                                endpoint.address().to_string() + ":" +
                                                std::to_string(endpoint.port()));
    }
    (&acceptor == &tlsAcceptor_ ? tlsPort_ : httpPort_) = acceptor.local_endpoint().port();
  }

  // Each answer is one write; it should not wait for the client's acknowledgement of the last.
  static void noDelay(tcp::socket& socket) {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
  }

  void acceptTls() {
    tlsAcceptor_.async_accept(net::make_strand(ioContext_),
                              [this](beast::error_code error, tcp::socket socket) {
                                if (error == net::error::operation_aborted) return;
                                if (!error) {
                                  noDelay(socket);
                                  std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
                                      shared_, std::move(socket), tls_.current())
                                      ->run();
                                }
                                acceptTls();
                              });
  }

  void acceptHttp() {
    httpAcceptor_.async_accept(
        net::make_strand(ioContext_), [this](beast::error_code error, tcp::socket socket) {
          if (error == net::error::operation_aborted) return;
          if (!error) {
            noDelay(socket);
            std::make_shared<Session<beast::tcp_stream>>(shared_, std::move(socket))->run();
          }
          acceptHttp();
        });
  }

  void scheduleCertificatePoll() {
    certificateTimer_.expires_after(options_.certificatePollInterval);
    certificateTimer_.async_wait([this](beast::error_code error) {
      if (error) return;
      switch (tls_.reloadIfChanged()) {
        case ReloadingTlsContext::ReloadResult::kReloaded:
          certificateReloads_.inc();
          spdlog::info("TLS certificate reloaded from {} and {}; new connections use it",
                       options_.certFile.string(), options_.keyFile.string());
          break;
        case ReloadingTlsContext::ReloadResult::kFailed:
          certificateReloadFailures_.inc();
          break;
        case ReloadingTlsContext::ReloadResult::kUnchanged:
          break;
      }
      scheduleCertificatePoll();
    });
  }

  // Until the store has answered once, probe it so that readiness does not wait for a pod.
  void scheduleStoreProbe(std::chrono::milliseconds delay) {
    probeTimer_.expires_after(delay);
    probeTimer_.async_wait([this](beast::error_code error) {
      if (error || handler_.storeAnswered()) return;
      net::post(lookupPool_, [this] {
        if (handler_.probeStore()) return;
        net::post(ioContext_, [this] { scheduleStoreProbe(options_.storeProbeInterval); });
      });
    });
  }

  ServerOptions options_;
  AdmissionHandler& handler_;
  core::MetricsRegistry& metrics_;
  ReloadingTlsContext tls_;
  net::thread_pool lookupPool_;
  Shared shared_;
  net::io_context ioContext_;
  tcp::acceptor tlsAcceptor_;
  tcp::acceptor httpAcceptor_;
  net::steady_timer certificateTimer_;
  net::steady_timer probeTimer_;
  core::Counter& certificateReloads_;
  core::Counter& certificateReloadFailures_;
  std::vector<std::thread> threads_;
  std::mutex stopMutex_;
  bool stopped_ = false;
  uint16_t tlsPort_ = 0;
  uint16_t httpPort_ = 0;
};

WebhookServer::WebhookServer(ServerOptions options, AdmissionHandler& handler,
                             core::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), handler, metrics)) {}

WebhookServer::~WebhookServer() = default;

void WebhookServer::start() {
  impl_->start();
}
void WebhookServer::stop() {
  impl_->stop();
}
uint16_t WebhookServer::tlsPort() const {
  return impl_->tlsPort();
}
uint16_t WebhookServer::httpPort() const {
  return impl_->httpPort();
}
bool WebhookServer::ready() const {
  return impl_->ready();
}

}  // namespace kcache::webhook
