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

#include "core/logging.h"
#include "webhook/review_prefix.h"
#include "webhook/tls_context.h"
#include "webhook/transport_limits.h"

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

// One listening port's limits and counters.
struct PortState {
  PortState(std::string_view name, std::size_t maxConnections, std::size_t bodyLimit,
            std::size_t headerLimit, core::MetricsRegistry& metrics)
      : name(name),
        bodyLimit(bodyLimit),
        headerLimit(headerLimit),
        limit(maxConnections),
        refused(metrics.counter("kcache_webhook_connections_refused_total",
                                "Connections closed at once because the port's connection cap was "
                                "reached and every open connection was answering a request.",
                                {{"port", std::string(name)}})),
        evicted(metrics.counter("kcache_webhook_connections_evicted_total",
                                "Connections closed to make room at the connection cap (the one "
                                "waiting longest without a request being answered).",
                                {{"port", std::string(name)}})) {
    metrics
        .gauge("kcache_webhook_connection_limit", "The connection cap of each port.",
               {{"port", std::string(name)}})
        .set(static_cast<double>(limit.maxConnections()));
  }

  std::string name;
  std::size_t bodyLimit;
  std::size_t headerLimit;
  ConnectionLimit limit;
  core::Counter& refused;
  core::Counter& evicted;
};

// Warnings a client can cause at will: a few per window, then a count of the rest.
core::LogRateLimiter clientWarnings() {
  return core::LogRateLimiter(5, std::chrono::seconds(10));
}

// What every session needs; owned by the server and outliving all sessions.
struct Shared {
  Shared(const ServerOptions& options, AdmissionHandler& handler, core::MetricsRegistry& metrics,
         net::thread_pool& lookupPool, ReloadingTlsContext& tls)
      : options(options),
        handler(handler),
        metrics(metrics),
        lookupPool(lookupPool),
        tls(tls),
        tlsPort("webhook", options.maxConnections, options.bodyLimitBytes, options.headerLimitBytes,
                metrics),
        httpPort("http", options.maxHttpConnections, options.httpBodyLimitBytes,
                 options.httpHeaderLimitBytes, metrics),
        largeBodies(options.largeBodySlots),
        handshakeFailures(metrics.counter("kcache_tls_handshake_failures_total",
                                          "TLS handshakes that failed or timed out.")),
        openConnections(metrics.gauge("kcache_webhook_open_connections",
                                      "Connections currently open, both ports.")),
        largeReviewsRead(metrics.counter(
            "kcache_webhook_large_reviews_total",
            "Reviews with a body above the large-body size, by whether they got a decoding slot "
            "(read) or were answered allowed, untouched without being decoded (shed).",
            {{"result", "read"}})),
        largeReviewsShed(metrics.counter(
            "kcache_webhook_large_reviews_total",
            "Reviews with a body above the large-body size, by whether they got a decoding slot "
            "(read) or were answered allowed, untouched without being decoded (shed).",
            {{"result", "shed"}})),
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
  PortState tlsPort;
  PortState httpPort;
  LargeBodyGate largeBodies;
  core::Counter& handshakeFailures;
  core::Gauge& openConnections;
  core::Counter& largeReviewsRead;
  core::Counter& largeReviewsShed;
  core::Counter& okResponses;
  core::LogRateLimiter refusedWarnings = clientWarnings();
  core::LogRateLimiter shedWarnings = clientWarnings();
  core::LogRateLimiter requestWarnings = clientWarnings();
};

// A body kept only up to its first kReviewPrefixBytes (enough to answer the review it starts),
// the rest dropped as it arrives: how a review that gets no decoding slot is read without
// holding it in memory.
struct PrefixBody {
  struct value_type {
    std::string prefix;
    std::uint64_t size = 0;
  };

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>&, beast::error_code& error) { error = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& error) {
      error = {};
      std::size_t total = 0;
      for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
           ++it) {
        const net::const_buffer buffer = *it;
        const std::size_t room =
            kReviewPrefixBytes - std::min(kReviewPrefixBytes, body_.prefix.size());
        body_.prefix.append(static_cast<const char*>(buffer.data()), std::min(room, buffer.size()));
        total += buffer.size();
      }
      body_.size += total;
      return total;
    }

    void finish(beast::error_code& error) { error = {}; }

   private:
    value_type& body_;
  };
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
  Session(Shared& shared, PortState& port, tcp::socket socket,
          std::shared_ptr<ssl::context> context = {})
      : shared_(shared),
        port_(port),
        context_(std::move(context)),
        stream_(makeStream(std::move(socket), context_)),
        timer_(stream_.get_executor()),
        accepted_(std::chrono::steady_clock::now()) {
    shared_.openConnections.add(1);
  }
  ~Session() { shared_.openConnections.add(-1); }

  void admitted(ConnectionLimit::Ticket ticket) { ticket_ = std::move(ticket); }

  // Pushed out at the connection cap; may be called from any thread.
  void evict() {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->closeNow(); });
  }

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
      // Also how a missing or untrusted client certificate ends: no HTTP is ever read. A
      // connection pushed out at the cap during its handshake is counted there, not here.
      if (error != net::error::operation_aborted) shared_.handshakeFailures.inc();
      spdlog::debug("TLS handshake failed: {}", error.message());
      return;  // the socket closes with the session
    }
    readRequest();
  }

  void resetParser() {
    // The body's storage is handed from one request's parser to the next: a review is ~9 KB,
    // and allocating it anew for every request showed in the profile. A large body's memory is
    // given back instead, as its slot was.
    std::string bodyStorage;
    if (parser_) bodyStorage = std::move(parser_->get().body());
    if (bodyStorage.capacity() > shared_.options.largeBodyBytes) bodyStorage = std::string();
    bodyStorage.clear();
    shedParser_.reset();
    parser_.emplace();
    parser_->get().body() = std::move(bodyStorage);
    parser_->body_limit(port_.bodyLimit);
    parser_->header_limit(static_cast<std::uint32_t>(port_.headerLimit));
    version_ = 11;
    keepAlive_ = false;
  }

  void readRequest() {
    resetParser();
    if (buffer_.size() > 0) {
      readHeader();
      return;
    }
    // Idle until the next request starts; only then does the header deadline run. The first
    // request has a short deadline counted from the accept: an attacker's connection that never
    // sends one is closed soon. Later ones may wait as long as the client keeps connections.
    if (requestsAnswered_ == 0) {
      lowest().expires_at(accepted_ + shared_.options.firstRequestTimeout);
    } else {
      lowest().expires_after(shared_.options.idleTimeout);
    }
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
          self->version_ = self->parser_->get().version();
          self->keepAlive_ = self->parser_->get().keep_alive();
          if (kTls && self->isLargeBody()) {
            self->waitForLargeBodySlot();
          } else {
            self->readBody();
          }
        });
  }

  // Above the large-body size, or of unknown size (chunked).
  bool isLargeBody() const {
    const auto length = parser_->content_length();
    if (!length) return parser_->chunked();
    return *length > shared_.options.largeBodyBytes;
  }

  void waitForLargeBodySlot() {
    auto& gate = shared_.largeBodies;
    if (auto slot = gate.tryAcquire()) {
      onLargeBodySlot(std::move(slot));
      return;
    }
    std::weak_ptr<Session> weak = this->shared_from_this();
    auto ticket = gate.wait([weak, executor = stream_.get_executor()](LargeBodyGate::Slot slot) {
      net::post(executor, [weak, slot = std::move(slot)]() mutable {
        if (auto self = weak.lock()) {
          self->timer_.cancel();
          self->onLargeBodySlot(std::move(slot));
        }
      });
    });
    timer_.expires_after(shared_.options.largeBodyWait);
    timer_.async_wait([self = this->shared_from_this(), ticket](beast::error_code error) {
      if (error || !self->shared_.largeBodies.cancel(ticket)) return;  // granted meanwhile
      self->shedLargeReview();
    });
  }

  void onLargeBodySlot(LargeBodyGate::Slot slot) {
    largeBodySlot_ = std::move(slot);
    shared_.largeReviewsRead.inc();
    readBody();
  }

  // No slot in time: read the body without keeping it (only its first bytes, to find the
  // review's uid) and answer allowed, untouched. Never a denial.
  void shedLargeReview() {
    shedParser_.emplace(std::move(*parser_));
    parser_.reset();
    shedParser_->body_limit(port_.bodyLimit);
    started_ = AdmissionHandler::Clock::now();
    lowest().expires_after(shared_.options.bodyTimeout);
    http::async_read(stream_, buffer_, *shedParser_,
                     [self = this->shared_from_this()](beast::error_code error, std::size_t) {
                       if (error) {
                         self->onReadError(error);
                         return;
                       }
                       self->answerShedReview();
                     });
  }

  void answerShedReview() {
    if (!startAnswering()) return;
    shared_.largeReviewsShed.inc();
    const auto& body = shedParser_->get().body();
    if (auto suppressed = shared_.shedWarnings.admit()) {
      spdlog::warn(
          "review of {} bytes answered allowed, untouched without decoding: all {} large-review "
          "slots stayed busy for {} ms{}",
          body.size, shared_.largeBodies.slots(), shared_.options.largeBodyWait.count(),
          core::LogRateLimiter::suppressedNote(*suppressed));
    }
    send(http::status::ok, allowedAnswerFor(body.prefix), "application/json");
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
      refuseRequest(
          http::status::payload_too_large,
          "request body exceeds the limit of " + std::to_string(port_.bodyLimit) + " bytes\n");
      return;
    }
    if (error == http::error::header_limit) {
      refuseRequest(http::status::request_header_fields_too_large, "request header too large\n");
      return;
    }
    if (error.category() == beast::error_code(http::error::end_of_stream).category() &&
        error != http::error::end_of_stream && error != http::error::partial_message) {
      refuseRequest(http::status::bad_request, "malformed HTTP request: " + error.message() + "\n");
      return;
    }
    // Timeouts, resets, a client that went away: nothing sensible to answer.
    close();
  }

  // An answer to a request that is not served, and the connection closed after it.
  void refuseRequest(http::status status, std::string body) {
    if (auto suppressed = shared_.requestWarnings.admit()) {
      spdlog::warn("{} port: refused a request with {}: {}{}", port_.name,
                   static_cast<unsigned>(status), core::logValue(body),
                   core::LogRateLimiter::suppressedNote(*suppressed));
    }
    sendText(status, std::move(body), /*close=*/true);
  }

  // The request is complete: from now on the connection is not pushed out at the cap. False
  // (and the connection closed) when it was pushed out already.
  bool startAnswering() {
    if (!ticket_.startAnswering()) {
      closeNow();
      return false;
    }
    requestInFlight_ = true;
    shared_.requestsInFlight.fetch_add(1);
    return true;
  }

  void route() {
    if (!startAnswering()) return;
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
    timer_.expires_after(shared_.options.lookupDeadline);
    timer_.async_wait(
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
        self->timer_.cancel();
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
    closeAfterWrite_ = close || !keepAlive_;
    writeResponse(version_ == 0 ? 11 : version_, status, body, contentType, allow,
                  !closeAfterWrite_);
    shared_.countResponse(static_cast<unsigned>(status));
    lowest().expires_after(shared_.options.writeTimeout);
    net::async_write(stream_, net::buffer(out_),
                     [self = this->shared_from_this()](beast::error_code error, std::size_t) {
                       self->onWritten(error);
                     });
  }

  void onWritten(beast::error_code error) {
    if (requestInFlight_) {
      requestInFlight_ = false;
      shared_.requestsInFlight.fetch_sub(1);
      ++requestsAnswered_;
      ticket_.finishAnswering();
    }
    if (largeBodySlot_) {
      // The large body and its slot go back together.
      if (parser_) parser_->get().body() = std::string();
      largeBodySlot_.reset();
    }
    if (error || closeAfterWrite_) {
      close();
      return;
    }
    readRequest();
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

  // Without goodbye: every pending operation ends with operation_aborted.
  void closeNow() {
    timer_.cancel();
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }

  Shared& shared_;
  PortState& port_;
  std::shared_ptr<ssl::context> context_;  // before stream_: the stream refers to it
  Stream stream_;
  net::steady_timer timer_;  // the wait for a large-body slot, then the lookup deadline
  const std::chrono::steady_clock::time_point accepted_;
  ConnectionLimit::Ticket ticket_;
  LargeBodyGate::Slot largeBodySlot_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<PrefixBody>> shedParser_;
  unsigned version_ = 11;
  bool keepAlive_ = false;
  std::string out_;  // the response being written
  bool closeAfterWrite_ = false;
  bool requestInFlight_ = false;
  std::uint64_t requestsAnswered_ = 0;
  AdmissionHandler::Clock::time_point started_;
};

// Gives a new connection its place under the port's cap (pushing out an idle one if need be) and
// starts it, or refuses it: the session, and with it the socket, is dropped at once.
template <typename SessionType>
void admitAndRun(Shared& shared, PortState& port, std::shared_ptr<SessionType> session) {
  std::weak_ptr<SessionType> weak = session;
  auto admission = port.limit.admit([weak] {
    if (auto victim = weak.lock()) victim->evict();
  });
  if (admission.outcome == ConnectionLimit::Outcome::kRefused) {
    port.refused.inc();
    if (auto suppressed = shared.refusedWarnings.admit()) {
      spdlog::warn("{} port: connection refused, all {} connections are answering requests{}",
                   port.name, port.limit.maxConnections(),
                   core::LogRateLimiter::suppressedNote(*suppressed));
    }
    return;
  }
  if (admission.outcome == ConnectionLimit::Outcome::kAdmittedAfterEviction) port.evicted.inc();
  session->admitted(std::move(admission.ticket));
  session->run();
}

}  // namespace

using TlsSession = Session<beast::ssl_stream<beast::tcp_stream>>;
using PlainSession = Session<beast::tcp_stream>;

class WebhookServer::Impl {
 public:
  Impl(ServerOptions options, AdmissionHandler& handler, core::MetricsRegistry& metrics)
      : options_(std::move(options)),
        handler_(handler),
        metrics_(metrics),
        tls_(TlsFiles{options_.certFile, options_.keyFile, options_.clientCaFile}),
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
        "webhook listening: https://{}:{}{} (certificate {}, {}), http://{}:{} (/healthz /readyz "
        "/metrics), at most {} and {} connections, {} I/O threads, {} lookup threads",
        options_.bindAddress, tlsPort(), kMutatePath, options_.certFile.string(),
        options_.clientCaFile.empty()
            ? std::string("no client authentication: anyone who reaches the port may post reviews")
            : "client certificates required, CA " + options_.clientCaFile.string(),
        options_.bindAddress, httpPort(), options_.maxConnections, options_.maxHttpConnections,
        threads, options_.lookupThreads);
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
    tlsAcceptor_.async_accept(
        net::make_strand(ioContext_), [this](beast::error_code error, tcp::socket socket) {
          if (error == net::error::operation_aborted) return;
          if (!error) {
            noDelay(socket);
            admitAndRun(shared_, shared_.tlsPort,
                        std::make_shared<TlsSession>(shared_, shared_.tlsPort, std::move(socket),
                                                     tls_.current()));
          }
          acceptTls();
        });
  }

  void acceptHttp() {
    httpAcceptor_.async_accept(net::make_strand(ioContext_), [this](beast::error_code error,
                                                                    tcp::socket socket) {
      if (error == net::error::operation_aborted) return;
      if (!error) {
        noDelay(socket);
        admitAndRun(shared_, shared_.httpPort,
                    std::make_shared<PlainSession>(shared_, shared_.httpPort, std::move(socket)));
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
          spdlog::info("TLS files reloaded ({}, {}{}{}); new connections use them",
                       options_.certFile.string(), options_.keyFile.string(),
                       options_.clientCaFile.empty() ? "" : ", client CA ",
                       options_.clientCaFile.string());
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
