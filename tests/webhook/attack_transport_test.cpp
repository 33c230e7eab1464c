// Attacks on the webhook's transport (issue 13: exhaustion, unauthenticated callers, weak TLS,
// log injection), each against the real server over real TLS. Every test asserts that the attack
// does no harm: the connection is refused, closed or answered "allowed, untouched", and a
// legitimate review is still answered within the registration's 5 s deadline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <fstream>
#include <future>
#include <thread>

#include "core/logging.h"
#include "tests/webhook/server_test_fixture.h"
#include "webhook/tls_context.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
using testing::ClientCertificate;
using testing::HttpsClient;
using testing::KeyType;
using testing::RunningServer;
namespace beast = boost::beast;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr auto kRegistrationDeadline = std::chrono::seconds(5);

json missReview() {
  return testing::fixtureJson("argo-3.5-v1.json");
}

// Waits until `condition` holds, up to `limit`.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

// A raw TCP connection (no TLS, no HTTP): what an attacker holds open.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : stream_(io_) {
    stream_.expires_after(std::chrono::seconds(10));
    stream_.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  void write(const std::string& bytes) { net::write(stream_, net::buffer(bytes)); }
  // True once the server closed the connection (waits up to `limit`).
  bool closedByPeer(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    stream_.expires_after(limit);
    char chunk[256];
    beast::error_code error;
    while (!error) stream_.read_some(net::buffer(chunk), error);
    return error != beast::error::timeout;
  }
  std::string readAll(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    stream_.expires_after(limit);
    std::string received;
    char chunk[4096];
    beast::error_code error;
    while (!error) {
      const auto bytes = stream_.read_some(net::buffer(chunk), error);
      received.append(chunk, bytes);
    }
    return received;
  }

 private:
  net::io_context io_;
  beast::tcp_stream stream_;
};

// The server answers a real review on a fresh connection, correctly and within the deadline;
// the connection is returned, kept alive.
std::unique_ptr<HttpsClient> expectServedWithinDeadline(
    RunningServer& server, const std::optional<ClientCertificate>& certificate = {}) {
  const auto started = Clock::now();
  auto client = server.client(certificate);
  const auto review = missReview();
  const auto response = client->postReview(review.dump());
  const auto took = Clock::now() - started;
  EXPECT_EQ(response.status, 200) << response.body;
  if (response.status == 200) {
    const auto answer = json::parse(response.body);
    EXPECT_EQ(answer["response"]["uid"], review["request"]["uid"]);
    EXPECT_TRUE(answer["response"]["allowed"].get<bool>());
  }
  EXPECT_LT(took, kRegistrationDeadline);
  return client;
}

// Lookups started by reviews from now on (the readiness probe's is done first).
int lookupsBeforeReviews(RunningServer& server, const testing::FaultyLookup& lookup) {
  EXPECT_TRUE(eventually([&] { return server.server().ready(); }));
  return lookup.calls();
}

ServerOptions optionsWith(const std::function<void(ServerOptions&)>& change) {
  auto options = RunningServer::defaultOptions();
  change(options);
  return options;
}

double refusedConnections(RunningServer& server, const std::string& port = "webhook") {
  return server.counter("kcache_webhook_connections_refused_total", {{"port", port}});
}
double evictedConnections(RunningServer& server, const std::string& port = "webhook") {
  return server.counter("kcache_webhook_connections_evicted_total", {{"port", port}});
}

// --- Exhaustion: connections ----------------------------------------------------------------

TEST(AttackExhaustionTest, IdleAttackersAtTheConnectionCapDoNotKeepTheApiServerOut) {
  testing::MemoryLookup memory;
  RunningServer server(memory, {}, optionsWith([](ServerOptions& options) {
                         options.maxConnections = 4;
                         options.firstRequestTimeout = std::chrono::seconds(30);
                         options.headerTimeout = std::chrono::seconds(30);
                       }));
  // The cap filled by every kind of idle connection: TCP only (handshake never started), TLS
  // done but no request, and a request header sent one piece and stalled.
  std::vector<std::unique_ptr<RawConnection>> raw;
  raw.push_back(std::make_unique<RawConnection>(server.server().tlsPort()));
  raw.push_back(std::make_unique<RawConnection>(server.server().tlsPort()));
  std::vector<std::unique_ptr<HttpsClient>> tls;
  tls.push_back(server.client());
  tls.push_back(server.client());
  tls.back()->writeRaw("POST /mutate HTTP/1.1\r\nHost: localhost\r\n");
  ASSERT_TRUE(eventually(
      [&] { return server.metrics().gauge("kcache_webhook_open_connections", "").value() == 4; }));
  EXPECT_EQ(evictedConnections(server), 0);

  // kube-apiserver arrives, three times, keeping its connections: each time an idle attacker's
  // connection makes room for it.
  std::vector<std::unique_ptr<HttpsClient>> apiServer;
  for (int attempt = 0; attempt < 3; ++attempt) {
    apiServer.push_back(expectServedWithinDeadline(server));
  }
  EXPECT_EQ(refusedConnections(server), 0);
  EXPECT_GE(evictedConnections(server), 3);
  // The oldest idle connection (the first TCP one) was the first to go.
  EXPECT_TRUE(raw.front()->closedByPeer(std::chrono::seconds(2)));
}

TEST(AttackExhaustionTest, ConnectionBeyondTheCapIsRefusedWhenAllAreAnswering) {
  testing::MemoryLookup memory;
  testing::FaultyLookup lookup(memory);
  RunningServer server(lookup, {}, optionsWith([](ServerOptions& options) {
                         options.maxConnections = 2;
                         options.lookupDeadline = std::chrono::seconds(4);
                       }));
  const int before = lookupsBeforeReviews(server, lookup);
  lookup.stallFor(std::chrono::milliseconds(1500));
  std::vector<std::future<testing::HttpResponse>> answering;
  for (int i = 0; i < 2; ++i) {
    answering.push_back(std::async(std::launch::async, [&server] {
      return server.client()->postReview(missReview().dump());
    }));
  }
  ASSERT_TRUE(eventually([&] { return lookup.calls() == before + 2; }));

  // The third connection: both places are answering a review, so it is closed at once, and the
  // client's handshake fails instead of waiting.
  const auto started = Clock::now();
  EXPECT_ANY_THROW(server.client());
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(1));
  EXPECT_EQ(refusedConnections(server), 1);

  for (auto& answer : answering) EXPECT_EQ(answer.get().status, 200);
  lookup.heal();
  expectServedWithinDeadline(server);
}

TEST(AttackExhaustionTest, PlainPortHasItsOwnCapAndProbesStillGetIn) {
  testing::MemoryLookup memory;
  RunningServer server(memory, {}, optionsWith([](ServerOptions& options) {
                         options.maxHttpConnections = 2;
                         options.firstRequestTimeout = std::chrono::seconds(30);
                       }));
  RawConnection first(server.server().httpPort());
  RawConnection second(server.server().httpPort());
  ASSERT_TRUE(eventually(
      [&] { return server.metrics().gauge("kcache_webhook_open_connections", "").value() == 2; }));
  EXPECT_EQ(testing::httpGet(server.server().httpPort(), "/healthz").status, 200);
  EXPECT_EQ(evictedConnections(server, "http"), 1);
  EXPECT_TRUE(first.closedByPeer(std::chrono::seconds(2)));
}

// --- Exhaustion: time ------------------------------------------------------------------------

TEST(AttackExhaustionTest, ConnectionWithoutAFirstRequestIsClosedAfterTheTimeout) {
  testing::MemoryLookup memory;
  RunningServer server(memory, {}, optionsWith([](ServerOptions& options) {
                         options.firstRequestTimeout = std::chrono::milliseconds(400);
                         options.idleTimeout = std::chrono::seconds(5);
                       }));
  for (const uint16_t port : {server.server().tlsPort(), server.server().httpPort()}) {
    const auto started = Clock::now();
    RawConnection idle(port);
    EXPECT_TRUE(idle.closedByPeer(std::chrono::seconds(5)));
    const auto took = Clock::now() - started;
    EXPECT_GE(took, std::chrono::milliseconds(350));
    EXPECT_LT(took, std::chrono::seconds(3));
  }
  // TLS done, no request: closed too.
  auto client = server.client();
  const auto started = Clock::now();
  EXPECT_TRUE(client->closedByPeer());
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));

  // A connection that has been answered once may wait longer than that for its next request
  // (the idle timeout, which is how kube-apiserver keeps its connections).
  auto kept = server.client();
  EXPECT_EQ(kept->postReview(missReview().dump()).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(kept->postReview(missReview().dump()).status, 200);
}

TEST(AttackExhaustionTest, SlowBodyIsCutOffAtTheBodyTimeout) {
  testing::MemoryLookup memory;
  RunningServer server(memory, {}, optionsWith([](ServerOptions& options) {
                         options.bodyTimeout = std::chrono::milliseconds(400);
                       }));
  auto client = server.client();
  const auto started = Clock::now();
  client->writeRaw(
      "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Content-Length: 1000\r\n\r\n{\"apiVersion\":");
  EXPECT_TRUE(client->closedByPeer());
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));
  expectServedWithinDeadline(server);
}

// --- Exhaustion: memory ----------------------------------------------------------------------

// A review of a pod whose annotation pads the body to about `bytes`, its members in the order
// kube-apiserver writes them (kind, apiVersion, request with uid first).
std::string paddedReview(std::size_t bytes, const std::string& uid,
                         const std::string& apiVersion = "admission.k8s.io/v1") {
  auto request = missReview()["request"];
  request.erase("uid");
  request["object"]["metadata"]["annotations"]["padding"] = std::string(bytes, 'p');
  return R"({"kind":"AdmissionReview","apiVersion":)" + json(apiVersion).dump() +
         R"(,"request":{"uid":)" + json(uid).dump() + "," + request.dump().substr(1) + "}";
}

TEST(AttackExhaustionTest, BodiesOverTheLimitAre413OnBothPortsAndTheLargestPodStillPasses) {
  testing::MemoryLookup memory;
  RunningServer server(memory);
  // kube-apiserver takes a pod of up to 3 MiB: its review is answered.
  auto client = server.client();
  const auto largest = client->postReview(paddedReview(3 * 1024 * 1024, "largest"));
  EXPECT_EQ(largest.status, 200);
  EXPECT_EQ(json::parse(largest.body)["response"]["uid"], "largest");

  // Above the limit: 413 before anything is read, and the connection closed.
  client->writeRaw(
      "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(RunningServer::defaultOptions().bodyLimitBytes + 1) + "\r\n\r\n{");
  EXPECT_EQ(client->readResponse().status, 413);
  EXPECT_TRUE(client->closedByPeer());

  // The plain port serves GETs only: a 2 KiB body is already too much.
  RawConnection plain(server.server().httpPort());
  plain.write("GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2048\r\n\r\n" +
              std::string(2048, 'x'));
  EXPECT_NE(plain.readAll().find("HTTP/1.1 413"), std::string::npos);
  EXPECT_GE(server.counter("kcache_webhook_http_responses_total", {{"code", "413"}}), 2);
  expectServedWithinDeadline(server);
}

TEST(AttackExhaustionTest, LargeReviewsBeyondTheirSlotsAreAllowedUntouchedNeverDenied) {
  testing::MemoryLookup memory;
  testing::FaultyLookup lookup(memory);
  RunningServer server(lookup, {}, optionsWith([](ServerOptions& options) {
                         options.largeBodyBytes = 64 * 1024;
                         options.largeBodySlots = 1;
                         options.largeBodyWait = std::chrono::milliseconds(200);
                         options.lookupDeadline = std::chrono::seconds(6);
                       }));
  // The only slot is held by a large review whose lookup stalls.
  const int before = lookupsBeforeReviews(server, lookup);
  lookup.stallFor(std::chrono::milliseconds(3000));
  auto holder = std::async(std::launch::async, [&server] {
    return server.client()->postReview(paddedReview(512 * 1024, "holder"));
  });
  ASSERT_TRUE(eventually([&] { return lookup.calls() == before + 1; }));

  // More large reviews meanwhile: each waits 200 ms for the slot, then is answered allowed,
  // without a patch, for its own uid (in its own apiVersion), without being decoded.
  for (const std::string& version :
       std::vector<std::string>{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"}) {
    const auto started = Clock::now();
    const auto response =
        server.client()->postReview(paddedReview(512 * 1024, "shed-" + version, version));
    EXPECT_LT(Clock::now() - started, kRegistrationDeadline);
    ASSERT_EQ(response.status, 200) << response.body;
    const auto answer = json::parse(response.body);
    EXPECT_EQ(answer["apiVersion"], version);
    EXPECT_EQ(answer["response"]["uid"], "shed-" + version);
    EXPECT_TRUE(answer["response"]["allowed"].get<bool>());
    EXPECT_FALSE(answer["response"].contains("patch"));
  }
  // Small reviews never wait for the slot.
  lookup.heal();
  expectServedWithinDeadline(server);

  const auto held = holder.get();
  EXPECT_EQ(held.status, 200);
  EXPECT_EQ(json::parse(held.body)["response"]["uid"], "holder");
  EXPECT_EQ(server.counter("kcache_webhook_large_reviews_total", {{"result", "shed"}}), 2);
  EXPECT_EQ(server.counter("kcache_webhook_large_reviews_total", {{"result", "read"}}), 1);
  // The slot came back: the next large review is decoded and looked up again.
  auto after = server.client()->postReview(paddedReview(512 * 1024, "after"));
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(server.counter("kcache_webhook_large_reviews_total", {{"result", "read"}}), 2);
}

// --- Log injection ---------------------------------------------------------------------------

// "<prefix>2026-12-06T09:22:30.522Z" at the start of the line, as configureLogging writes it.
bool startsAsALogLine(std::string_view line, std::string_view prefix) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (line.substr(0, prefix.size()) != prefix) return false;
  line.remove_prefix(prefix.size());
  if (line.size() < kShape.size()) return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    const bool digit = line[i] >= '0' && line[i] <= '9';
    if (kShape[i] == 'd' ? !digit : line[i] != kShape[i]) return false;
  }
  return true;
}

TEST(AttackLogInjectionTest, HostileReviewStringsAreLoggedEscapedTruncatedOnOneLine) {
  testing::MemoryLookup memory;
  // A name that tries to start a forged log line, to recolour the terminal, and to be 10 KB.
  const std::string forgedLine = "2026-01-01T00:00:00.000Z info admission hit pod=team-a/forged";
  const std::string hostile =
      "evil\n" + forgedLine + "\r\x1b[31mred\x1b[0m\xc2\x9b\xe2\x80\xae" + std::string(10000, 'x');
  auto review = missReview();
  review["request"]["name"] = hostile;
  review["request"]["object"]["metadata"]["name"] = hostile;
  auto badVersion = missReview();
  badVersion["apiVersion"] = "v1\n" + forgedLine + std::string(10000, 'y');

  for (const auto format : {core::LogFormat::kText, core::LogFormat::kJson}) {
    const auto output = testing::captureStderr([&] {
      core::configureLogging(format, "info");
      RunningServer server(memory);
      auto client = server.client();
      EXPECT_EQ(client->postReview(review.dump()).status, 200);
      EXPECT_EQ(client->postReview(badVersion.dump()).status, 400);
      server.server().stop();
    });
    core::configureLogging(core::LogFormat::kText, "info");
    const std::string_view prefix = format == core::LogFormat::kJson ? R"({"ts":")" : "";
    int mentions = 0;
    for (const auto& line : testing::splitLines(output)) {
      // Every line is one whole event: nothing the attacker sent started a line of its own.
      EXPECT_TRUE(startsAsALogLine(line, prefix)) << line.substr(0, 200);
      EXPECT_EQ(line.find('\x1b'), std::string::npos);
      EXPECT_EQ(line.find('\r'), std::string::npos);
      EXPECT_EQ(line.find("\xc2\x9b"), std::string::npos);
      EXPECT_EQ(line.find("\xe2\x80\xae"), std::string::npos);
      EXPECT_LT(line.size(), core::kMaxLogMessageBytes + 200);
      if (format == core::LogFormat::kJson) {
        EXPECT_TRUE(json::accept(line)) << line;
      }
      EXPECT_NE(line.rfind(forgedLine, 0), 0u) << "a forged line of its own";
      if (line.find("evil") != std::string::npos || line.find("yyyy") != std::string::npos) {
        ++mentions;
        EXPECT_NE(line.find("…(+"), std::string::npos) << "cut with a note: " << line.size();
        EXPECT_NE(line.find("\\n" + forgedLine), std::string::npos)
            << "the forged line stays inside the real one, its newline escaped";
      }
    }
    // The review's miss (and the first-seen note), and the refused apiVersion.
    EXPECT_GE(mentions, 2) << output.substr(0, 2000);
  }
}

struct SslCtxFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

// A blocking OpenSSL client on a plain socket, configured by the test (one cipher suite, one
// protocol version) and able to ask for a renegotiation, which Beast's client cannot.
class RawTlsClient {
 public:
  explicit RawTlsClient(const std::function<void(SSL_CTX*)>& configure)
      : context_(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_set_security_level(context_.get(), 0);  // the refusal must come from the server
    SSL_CTX_set_verify(context_.get(), SSL_VERIFY_NONE, nullptr);
    configure(context_.get());
  }
  ~RawTlsClient() {
    ssl_.reset();
    if (socket_ >= 0) ::close(socket_);
  }
  RawTlsClient(const RawTlsClient&) = delete;
  RawTlsClient& operator=(const RawTlsClient&) = delete;

  // True when the handshake completed.
  bool connect(uint16_t port) {
    socket_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const timeval timeout{5, 0};
    ::setsockopt(socket_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(socket_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return false;
    }
    ssl_.reset(SSL_new(context_.get()));
    SSL_set_fd(ssl_.get(), socket_);
    const bool ok = SSL_connect(ssl_.get()) == 1;
    ERR_clear_error();
    return ok;
  }
  // True when a renegotiation handshake completed.
  bool renegotiate() {
    if (SSL_renegotiate(ssl_.get()) != 1) return false;
    const bool ok = SSL_do_handshake(ssl_.get()) == 1 && SSL_renegotiate_pending(ssl_.get()) == 0;
    ERR_clear_error();
    return ok;
  }
  std::string cipher() const { return SSL_get_cipher_name(ssl_.get()); }
  // Sends `bytes` and reads: true when any answer byte came back.
  bool exchange(const std::string& bytes) {
    const bool answered =
        SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size())) > 0 && [&] {
          char byte = 0;
          return SSL_read(ssl_.get(), &byte, 1) > 0;
        }();
    ERR_clear_error();
    return answered;
  }

 private:
  std::unique_ptr<SSL_CTX, SslCtxFree> context_;
  std::unique_ptr<SSL, SslFree> ssl_;
  int socket_ = -1;
};

// --- Client authentication -------------------------------------------------------------------

struct ClientAuthFiles {
  testing::TempDir dir;
  std::filesystem::path caCert = dir.path() / "client-ca.pem";
  std::filesystem::path caKey = dir.path() / "client-ca.key";
  ClientCertificate apiServer{dir.path() / "apiserver.pem", dir.path() / "apiserver.key"};

  ClientAuthFiles() {
    testing::writeCertificateAuthority(caCert, caKey, "kube-apiserver-client-ca");
    testing::writeSignedCertificate(apiServer.certFile, apiServer.keyFile, "kube-apiserver", caCert,
                                    caKey);
  }
  ClientCertificate issue(const std::string& name, const std::string& usage = "clientAuth") {
    ClientCertificate certificate{dir.path() / (name + ".pem"), dir.path() / (name + ".key")};
    testing::writeSignedCertificate(certificate.certFile, certificate.keyFile, name, caCert, caKey,
                                    usage);
    return certificate;
  }
};

// True when `certificate` (or none) gets an HTTP answer to a review. With TLS 1.3 a refused
// client certificate may only show on the first read, after the client's handshake "succeeded".
bool answered(RunningServer& server, const std::optional<ClientCertificate>& certificate) {
  try {
    auto client = server.client(certificate);
    return client->postReview(missReview().dump()).status == 200;
  } catch (const std::exception&) {
    return false;
  }
}

TEST(AttackUnauthenticatedCallerTest, WithAClientCaOnlyTheApiServersCertificateIsAnswered) {
  testing::MemoryLookup memory;
  ClientAuthFiles files;
  ClientAuthFiles otherAuthority;  // a CA the server does not trust, with its own client cert
  RunningServer server(memory, {}, optionsWith([&](ServerOptions& options) {
                         options.clientCaFile = files.caCert;
                       }));
  EXPECT_TRUE(answered(server, files.apiServer));
  expectServedWithinDeadline(server, files.apiServer);

  const double failuresBefore = server.counter("kcache_tls_handshake_failures_total");
  EXPECT_FALSE(answered(server, std::nullopt)) << "no certificate";
  EXPECT_FALSE(answered(server, otherAuthority.apiServer)) << "a certificate of another CA";
  EXPECT_FALSE(answered(server, files.issue("server-only", "serverAuth")))
      << "a certificate of the right CA that is not for client authentication";
  // A self-signed certificate claiming the API server's name.
  ClientCertificate selfSigned{files.dir.path() / "self.pem", files.dir.path() / "self.key"};
  testing::writeSelfSignedCertificate(selfSigned.certFile, selfSigned.keyFile, "kube-apiserver");
  EXPECT_FALSE(answered(server, selfSigned));
  EXPECT_TRUE(eventually(
      [&] { return server.counter("kcache_tls_handshake_failures_total") >= failuresBefore + 4; }));
  // No HTTP response of any kind went out for them.
  EXPECT_EQ(server.counter("kcache_webhook_http_responses_total", {{"code", "200"}}), 2);

  // Both TLS versions enforce it.
  for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    RawTlsClient client([version](SSL_CTX* context) {
      SSL_CTX_set_min_proto_version(context, version);
      SSL_CTX_set_max_proto_version(context, version);
    });
    const bool handshake = client.connect(server.server().tlsPort());
    EXPECT_FALSE(handshake && client.exchange("POST /mutate HTTP/1.1\r\nHost: localhost\r\n"
                                              "Content-Type: application/json\r\n"
                                              "Content-Length: 2\r\n\r\n{}"))
        << "TLS version " << version << " read an answer without a certificate";
  }
}

TEST(AttackUnauthenticatedCallerTest, ClientCaRotationReachesNewConnections) {
  testing::MemoryLookup memory;
  ClientAuthFiles first;
  testing::TempDir dir;
  const auto caFile = dir.path() / "client-ca.pem";
  std::filesystem::copy_file(first.caCert, caFile);
  RunningServer server(memory, {},
                       optionsWith([&](ServerOptions& options) { options.clientCaFile = caFile; }));
  EXPECT_TRUE(answered(server, first.apiServer));

  ClientAuthFiles second;
  std::filesystem::copy_file(second.caCert, dir.path() / "staged.pem");
  std::filesystem::rename(dir.path() / "staged.pem", caFile);
  EXPECT_TRUE(eventually([&] { return answered(server, second.apiServer); }));
  EXPECT_FALSE(answered(server, first.apiServer));
}

TEST(AttackUnauthenticatedCallerTest, WithoutAClientCaAnyCallerIsAnswered) {
  // What the README warns about: without --client-ca-file, whoever reaches the port is served.
  testing::MemoryLookup memory;
  ClientAuthFiles files;
  RunningServer server(memory);
  EXPECT_TRUE(answered(server, std::nullopt));
  EXPECT_TRUE(answered(server, files.apiServer));
}

TEST(AttackUnauthenticatedCallerTest, AnUnreadableClientCaStopsTheServerFromStarting) {
  testing::MemoryLookup memory;
  testing::TempDir dir;
  std::ofstream(dir.path() / "empty.pem") << "not a certificate\n";
  for (const auto& caFile : {dir.path() / "missing.pem", dir.path() / "empty.pem"}) {
    try {
      RunningServer server(
          memory, {}, optionsWith([&](ServerOptions& options) { options.clientCaFile = caFile; }));
      ADD_FAILURE() << "started with client CA " << caFile;
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find(caFile.string()), std::string::npos) << error.what();
    }
  }
}

// --- TLS policy ------------------------------------------------------------------------------

// A TLS server with OpenSSL's own defaults (every cipher allowed), to show that what kcache
// refuses is something the client really offered and a default server would accept.
class PermissiveTlsServer {
 public:
  PermissiveTlsServer(const std::filesystem::path& certFile, const std::filesystem::path& keyFile,
                      const std::function<void(SSL_CTX*)>& configure = {})
      : context_(SSL_CTX_new(TLS_server_method())) {
    SSL_CTX_set_security_level(context_.get(), 0);
    SSL_CTX_set_cipher_list(context_.get(), "ALL");
    SSL_CTX_use_certificate_chain_file(context_.get(), certFile.c_str());
    SSL_CTX_use_PrivateKey_file(context_.get(), keyFile.c_str(), SSL_FILETYPE_PEM);
    if (configure) configure(context_.get());
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    ::listen(listener_, 8);
    socklen_t length = sizeof(address);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~PermissiveTlsServer() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
  }
  PermissiveTlsServer(const PermissiveTlsServer&) = delete;
  PermissiveTlsServer& operator=(const PermissiveTlsServer&) = delete;
  uint16_t port() const { return port_; }

 private:
  void serve() {
    while (true) {
      const int connection = ::accept(listener_, nullptr, nullptr);
      if (connection < 0) return;
      const timeval timeout{5, 0};
      ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      std::unique_ptr<SSL, SslFree> ssl(SSL_new(context_.get()));
      SSL_set_fd(ssl.get(), connection);
      if (SSL_accept(ssl.get()) == 1) {
        char buffer[256];
        while (SSL_read(ssl.get(), buffer, sizeof(buffer)) > 0) {
        }
      }
      ERR_clear_error();
      ssl.reset();
      ::close(connection);
    }
  }

  std::unique_ptr<SSL_CTX, SslCtxFree> context_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

void tls12With(SSL_CTX* context, const char* cipher) {
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(context, cipher);
}

TEST(AttackWeakTlsTest, Tls12OffersOnlyEcdheWithAeadCiphers) {
  testing::MemoryLookup memory;
  // RSA: the one key type with which non-ECDHE suites exist in TLS 1.2.
  RunningServer server(memory, {}, RunningServer::defaultOptions(), KeyType::kRsa);
  testing::TempDir dir;
  testing::writeSelfSignedCertificate(dir.path() / "rsa.pem", dir.path() / "rsa.key", "control",
                                      KeyType::kRsa);
  PermissiveTlsServer control(dir.path() / "rsa.pem", dir.path() / "rsa.key");

  for (const char* weak : {"AES128-SHA", "AES256-SHA256", "AES128-GCM-SHA256",
                           "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"}) {
    RawTlsClient toControl([&](SSL_CTX* context) { tls12With(context, weak); });
    ASSERT_TRUE(toControl.connect(control.port())) << weak << ": a default server accepts it";
    RawTlsClient toKcache([&](SSL_CTX* context) { tls12With(context, weak); });
    EXPECT_FALSE(toKcache.connect(server.server().tlsPort())) << weak << " must be refused";
  }
  for (const char* strong : {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                             "ECDHE-RSA-CHACHA20-POLY1305"}) {
    RawTlsClient client([&](SSL_CTX* context) { tls12With(context, strong); });
    ASSERT_TRUE(client.connect(server.server().tlsPort())) << strong;
    EXPECT_EQ(client.cipher(), strong);
  }
  // TLS 1.1 is refused even with a suite kcache allows.
  RawTlsClient old([](SSL_CTX* context) {
    SSL_CTX_set_min_proto_version(context, TLS1_1_VERSION);
    SSL_CTX_set_max_proto_version(context, TLS1_1_VERSION);
  });
  EXPECT_FALSE(old.connect(server.server().tlsPort()));
  expectServedWithinDeadline(server);
}

TEST(AttackWeakTlsTest, EcdsaCertificateServesEcdheEcdsaGcmAndTls13) {
  testing::MemoryLookup memory;
  RunningServer server(memory);
  for (const char* suite : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                            "ECDHE-ECDSA-CHACHA20-POLY1305"}) {
    RawTlsClient client([&](SSL_CTX* context) { tls12With(context, suite); });
    ASSERT_TRUE(client.connect(server.server().tlsPort())) << suite;
    EXPECT_EQ(client.cipher(), suite);
  }
  RawTlsClient cbc([](SSL_CTX* context) { tls12With(context, "ECDHE-ECDSA-AES128-SHA"); });
  EXPECT_FALSE(cbc.connect(server.server().tlsPort()));
  RawTlsClient tls13(
      [](SSL_CTX* context) { SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION); });
  ASSERT_TRUE(tls13.connect(server.server().tlsPort()));
  EXPECT_EQ(tls13.cipher().rfind("TLS_", 0), 0u) << tls13.cipher();
}

TEST(AttackWeakTlsTest, RenegotiationIsRefused) {
  testing::MemoryLookup memory;
  RunningServer server(memory);
  const auto context = makeServerTlsContext(
      TlsFiles{server.certFile(), server.certFile().parent_path() / "key.pem", {}});
  EXPECT_NE(SSL_CTX_get_options(context->native_handle()) & SSL_OP_NO_RENEGOTIATION, 0u);

  auto tls12 = [](SSL_CTX* context) { SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION); };
  // Control: a server that allows it completes the client's renegotiation.
  testing::TempDir dir;
  testing::writeSelfSignedCertificate(dir.path() / "c.pem", dir.path() / "c.key", "control");
  PermissiveTlsServer control(dir.path() / "c.pem", dir.path() / "c.key", [](SSL_CTX* context) {
    SSL_CTX_set_options(context, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  });
  RawTlsClient toControl(tls12);
  ASSERT_TRUE(toControl.connect(control.port()));
  ASSERT_TRUE(toControl.renegotiate()) << "the client can renegotiate where it is allowed";

  RawTlsClient toKcache(tls12);
  ASSERT_TRUE(toKcache.connect(server.server().tlsPort()));
  EXPECT_FALSE(toKcache.renegotiate());
  expectServedWithinDeadline(server);
}

}  // namespace
}  // namespace kcache::webhook
