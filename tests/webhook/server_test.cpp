// The real server over real TLS with real AdmissionReview bodies; the store is an in-memory
// lookup behind a wrapper that can fail or stall on command.
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <thread>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "tests/webhook/server_test_fixture.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
using testing::HttpResponse;
namespace beast = boost::beast;
namespace net = boost::asio;
namespace contract = core::contract;

constexpr const char* kOutputs = R"({"parameters":[{"name":"acc","value":"0.9"}],"exitCode":"0"})";

// The key of the review's pod in `namespaceName` (namespace scope, the server's default).
std::string keyOf(const json& review, const std::string& namespaceName) {
  return testing::keyInScope(
      core::findArgoTemplate(review.at("request").at("object"))->argoTemplate,
      store::CacheScope::kNamespace, namespaceName);
}
std::string keyOf(const json& review) {
  return keyOf(review, review.at("request").at("namespace"));
}

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ServerTest : public ::testing::Test {
 protected:
  int64_t record(const json& review, const std::string& namespaceName) {
    store::CacheEntry entry;
    entry.key = keyOf(review, namespaceName);
    entry.namespaceName = namespaceName;
    entry.executionOutput = core::encodeExecutionOutput({kOutputs, "7"});
    entry.startedAtInSec = nowSeconds() - 60;
    return memory.add(entry);
  }

  // Posts the review and applies the answer to its pod.
  testing::AppliedAnswer admit(testing::HttpsClient& client, const json& review) {
    const auto response = client.postReview(review.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.headers.at("content-type"), "application/json");
    auto applied = testing::applyAnswer(review["request"]["object"], response.body);
    EXPECT_TRUE(applied.allowed);
    EXPECT_EQ(applied.review["apiVersion"], review["apiVersion"]);
    EXPECT_EQ(applied.review["response"]["uid"], review["request"]["uid"]);
    return applied;
  }

  // The server still answers a valid review correctly on a new connection.
  void expectStillServing() {
    auto client = server->client();
    const auto review = testing::fixtureJson("argo-3.5-v1.json");
    const auto applied = admit(*client, review);
    ASSERT_TRUE(applied.hasPatch);
    EXPECT_EQ(applied.patchedPod["metadata"]["annotations"]
                                [std::string(contract::kExecutionCacheKeyAnnotation)],
              keyOf(review));
  }

  testing::MemoryLookup memory;
  testing::FaultyLookup lookup{memory};
  std::unique_ptr<testing::RunningServer> server = std::make_unique<testing::RunningServer>(lookup);
};

TEST_F(ServerTest, MissThenHitOverOneKeptAliveConnectionBothVersions) {
  auto client = server->client();
  // The two fixtures carry the same template; separate namespaces keep their entries apart.
  for (const auto& [fixture, namespaceName] :
       {std::pair{"argo-3.5-v1.json", "team-a"}, std::pair{"argo-3.3-v1beta1.json", "team-c"}}) {
    auto review = testing::fixtureJson(fixture);
    review["request"]["namespace"] = namespaceName;
    review["request"]["object"]["metadata"]["namespace"] = namespaceName;
    const auto miss = admit(*client, review);
    ASSERT_TRUE(miss.hasPatch) << fixture;
    EXPECT_EQ(miss.review["response"]["patchType"], "JSONPatch");
    EXPECT_EQ(miss.patchedPod["metadata"]["labels"][std::string(contract::kCacheIdLabel)], "");
    EXPECT_EQ(miss.patchedPod["spec"], review["request"]["object"]["spec"]);

    const auto id = record(review, namespaceName);
    const auto hit = admit(*client, review);
    ASSERT_TRUE(hit.hasPatch);
    const auto& pod = hit.patchedPod;
    ASSERT_EQ(pod["spec"]["containers"].size(), 1u);
    EXPECT_EQ(pod["spec"]["containers"][0]["command"][1],
              "\"This step output is taken from cache.\"");
    EXPECT_FALSE(pod["spec"].contains("initContainers"));
    EXPECT_FALSE(pod["spec"].contains("nodeSelector"));
    EXPECT_FALSE(pod["spec"].contains("affinity"));
    EXPECT_EQ(pod["metadata"]["annotations"][std::string(contract::kArgoOutputsAnnotation)],
              kOutputs);
    EXPECT_EQ(pod["metadata"]["labels"][std::string(contract::kCacheIdLabel)], std::to_string(id));
    EXPECT_EQ(pod["metadata"]["labels"][std::string(contract::kMetadataExecutionIdLabel)], "7");
  }
  EXPECT_EQ(server->counter("kcache_admission_requests_total", {{"outcome", "hit"}}), 2);
  EXPECT_EQ(server->counter("kcache_admission_requests_total", {{"outcome", "miss"}}), 2);
}

TEST_F(ServerTest, PodWithoutAnnotationsGetsAValidPatch) {
  auto client = server->client();
  const auto review = testing::fixtureJson("no-annotations-v1.json");
  record(review, "team-a");
  const auto applied = admit(*client, review);
  ASSERT_TRUE(applied.hasPatch);
  // The key, the outputs and (annotation delivery) report-outputs-completed.
  EXPECT_EQ(applied.patchedPod["metadata"]["annotations"].size(), 3u);
}

TEST_F(ServerTest, NamespacesAreIsolated) {
  auto client = server->client();
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-b");
  const auto applied = admit(*client, review);
  ASSERT_TRUE(applied.hasPatch);
  EXPECT_EQ(applied.patchedPod["metadata"]["labels"][std::string(contract::kCacheIdLabel)], "")
      << "team-a must not receive team-b's outputs";
}

TEST_F(ServerTest, EverySkipFixtureIsAllowedUntouched) {
  auto client = server->client();
  for (const char* fixture :
       {"skip-cache-not-enabled-v1.json", "skip-configmap-v1.json", "skip-kfp-v2-v1.json",
        "skip-kube-system-v1beta1.json", "skip-no-template-v1.json", "skip-staleness-zero-v1.json",
        "skip-tfx-entrypoint-v1.json", "skip-tfx-label-v1.json"}) {
    const auto review = testing::fixtureJson(fixture);
    const auto applied = admit(*client, review);
    EXPECT_FALSE(applied.hasPatch) << fixture;
    EXPECT_FALSE(applied.review["response"].contains("patchType")) << fixture;
  }
  EXPECT_EQ(server->counter("kcache_admission_requests_total", {{"outcome", "skipped"}}), 8);
  EXPECT_EQ(memory.lookups(), 1) << "only the readiness probe reached the store";
}

TEST_F(ServerTest, FailingStoreAllowsWithoutPatchThenRecovers) {
  auto client = server->client();
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-a");
  lookup.failWith("connection refused (simulated)");
  for (int i = 0; i < 3; ++i) {
    const auto applied = admit(*client, review);
    EXPECT_FALSE(applied.hasPatch);
  }
  EXPECT_EQ(server->counter("kcache_admission_errors_total", {{"reason", "store_unavailable"}}), 3);
  EXPECT_GE(server->counter("kcache_store_lookup_errors_total"), 3);
  lookup.heal();
  const auto applied = admit(*client, review);
  ASSERT_TRUE(applied.hasPatch);
  EXPECT_EQ(applied.patchedPod["metadata"]["labels"][std::string(contract::kReusedFromCacheLabel)],
            "true");
}

TEST_F(ServerTest, StalledStoreIsAnsweredAtTheDeadline) {
  auto client = server->client();
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-a");
  lookup.stallFor(std::chrono::milliseconds(1500));
  const auto stalled = admit(*client, review);
  EXPECT_FALSE(stalled.hasPatch);
  EXPECT_EQ(server->counter("kcache_admission_errors_total", {{"reason", "store_unavailable"}}), 1);
  // The late lookup result is dropped, not answered a second time.
  lookup.heal();
  const auto next = admit(*client, review);
  EXPECT_TRUE(next.hasPatch);
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  EXPECT_EQ(server->counter("kcache_admission_requests_total", {{"outcome", "error"}}), 1);
  EXPECT_EQ(server->counter("kcache_admission_requests_total", {{"outcome", "hit"}}), 1);
}

TEST_F(ServerTest, StopAnswersTheReviewsInFlight) {
  auto client = server->client();
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto id = record(review, "team-a");
  lookup.stallFor(std::chrono::milliseconds(200));
  testing::HttpResponse response;
  std::thread inFlight([&] { response = client->postReview(review.dump()); });
  while (lookup.calls() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server->server().stop();
  inFlight.join();
  ASSERT_EQ(response.status, 200);
  const auto applied = testing::applyAnswer(review["request"]["object"], response.body);
  EXPECT_EQ(applied.patchedPod["metadata"]["labels"][std::string(contract::kCacheIdLabel)],
            std::to_string(id));
}

TEST_F(ServerTest, ManyConcurrentKeptAliveConnections) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto id = record(review, "team-a");
  std::atomic<int> hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      auto client = server->client();
      for (int i = 0; i < 30; ++i) {
        const auto response = client->postReview(review.dump());
        const auto applied = testing::applyAnswer(review["request"]["object"], response.body);
        if (applied.hasPatch &&
            applied.patchedPod["metadata"]["labels"][std::string(contract::kCacheIdLabel)] ==
                std::to_string(id)) {
          ++hits;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(hits.load(), 180);
}

TEST_F(ServerTest, HealthReadinessAndMetricsOnThePlainPort) {
  EXPECT_EQ(testing::httpGet(server->server().httpPort(), "/healthz").status, 200);
  for (int i = 0; i < 200 && !server->server().ready(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(testing::httpGet(server->server().httpPort(), "/readyz").status, 200);
  auto client = server->client();
  admit(*client, testing::fixtureJson("argo-3.5-v1.json"));
  const auto metrics = testing::httpGet(server->server().httpPort(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("kcache_admission_requests_total{outcome=\"miss\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("kcache_admission_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.body.find("kcache_store_lookup_duration_seconds_count"), std::string::npos);
  EXPECT_EQ(testing::httpGet(server->server().httpPort(), "/mutate").status, 404)
      << "the admission endpoint is only served over TLS";
}

TEST(ServerReadinessTest, NotReadyUntilTheStoreAnswers) {
  testing::MemoryLookup memory;
  testing::FaultyLookup lookup(memory);
  lookup.failWith("database starting up (simulated)");
  testing::RunningServer server(lookup);
  EXPECT_EQ(testing::httpGet(server.server().httpPort(), "/readyz").status, 503);
  lookup.heal();
  int status = 0;
  for (int i = 0; i < 500 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    status = testing::httpGet(server.server().httpPort(), "/readyz").status;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(ServerTest, CertificateRotationReachesNewConnectionsOnly) {
  auto before = server->client();
  EXPECT_EQ(before->peerCommonName(), "kcache-test-1");
  server->rotateCertificate("kcache-test-2");
  std::string seen;
  for (int i = 0; i < 500 && seen != "kcache-test-2"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    seen = server->client()->peerCommonName();
  }
  EXPECT_EQ(seen, "kcache-test-2");
  EXPECT_EQ(server->counter("kcache_tls_certificate_reloads_total", {{"result", "success"}}), 1);
  // The connection opened before the rotation is still alive and served.
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  EXPECT_TRUE(admit(*before, review).hasPatch);
  EXPECT_EQ(before->peerCommonName(), "kcache-test-1");
}

// ---- Malformed input: each kind gets its documented status and the server keeps serving. ----

struct MalformedCase {
  const char* name;
  std::string method, target, contentType, body;
  int status;
};

void PrintTo(const MalformedCase& value, std::ostream* out) {
  *out << value.name;
}

class MalformedRequestTest : public ServerTest,
                             public ::testing::WithParamInterface<MalformedCase> {};

std::string validBody() {
  return testing::readFixture("argo-3.5-v1.json");
}

std::string reviewWith(const std::string& requestJson) {
  return R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":)" +
         requestJson + "}";
}

TEST_P(MalformedRequestTest, GetsItsStatusAndTheServerKeepsServing) {
  const auto& param = GetParam();
  auto client = server->client();
  const auto response = client->request(param.method, param.target, param.body, param.contentType);
  EXPECT_EQ(response.status, param.status) << response.body;
  if (param.status == 200) {
    const auto answer = json::parse(response.body);
    EXPECT_TRUE(answer["response"]["allowed"].get<bool>());
    // A valid pod review is tagged; an object that is no pod is let through untouched.
    EXPECT_EQ(answer["response"].contains("patch"), param.body == validBody());
  } else {
    EXPECT_FALSE(response.body.empty()) << "errors carry a message";
  }
  expectStillServing();
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, MalformedRequestTest,
    ::testing::Values(
        MalformedCase{"truncated_json", "POST", "/mutate", "application/json",
                      validBody().substr(0, 1000), 400},
        MalformedCase{"deep_nesting", "POST", "/mutate", "application/json",
                      std::string(100000, '[') + std::string(100000, ']'), 400},
        MalformedCase{"empty_body", "POST", "/mutate", "application/json", "", 400},
        MalformedCase{"json_array", "POST", "/mutate", "application/json", "[1,2]", 400},
        MalformedCase{"wrong_method", "GET", "/mutate", "application/json", "", 405},
        MalformedCase{"put_method", "PUT", "/mutate", "application/json", validBody(), 405},
        MalformedCase{"wrong_content_type", "POST", "/mutate", "text/plain", validBody(), 415},
        MalformedCase{"no_content_type", "POST", "/mutate", "", validBody(), 415},
        MalformedCase{"unknown_path", "POST", "/validate", "application/json", validBody(), 404},
        MalformedCase{"request_null", "POST", "/mutate", "application/json", reviewWith("null"),
                      400},
        MalformedCase{"request_without_uid", "POST", "/mutate", "application/json",
                      reviewWith(R"({"operation":"CREATE"})"), 400},
        MalformedCase{"unknown_api_version", "POST", "/mutate", "application/json",
                      R"({"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"u"}})", 400},
        MalformedCase{"invalid_utf8", "POST", "/mutate", "application/json",
                      reviewWith("{\"uid\":\"u\",\"name\":\"\xc3\x28\"}"), 400},
        MalformedCase{"object_not_a_pod", "POST", "/mutate", "application/json",
                      reviewWith(R"({"uid":"u","operation":"CREATE","namespace":"team-a",
                        "resource":{"group":"","version":"v1","resource":"pods"},
                        "object":"not a pod"})"),
                      200},
        MalformedCase{"object_missing", "POST", "/mutate", "application/json",
                      reviewWith(R"({"uid":"u","operation":"CREATE","namespace":"team-a",
                        "resource":{"group":"","version":"v1","resource":"pods"}})"),
                      200},
        MalformedCase{"charset_is_accepted", "POST", "/mutate", "application/json; charset=utf-8",
                      validBody(), 200}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

TEST_F(ServerTest, BodyOverTheLimitIs413) {
  auto client = server->client();
  client->writeRaw(
      "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Content-Length: 10485760\r\n\r\n{\"apiVersion\":");
  EXPECT_EQ(client->readResponse().status, 413);
  EXPECT_TRUE(client->closedByPeer());
  expectStillServing();
}

TEST_F(ServerTest, ChunkedBodyOverTheLimitIs413) {
  auto client = server->client();
  client->writeRaw(
      "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n800000\r\n{\"a\":");
  EXPECT_EQ(client->readResponse().status, 413);
  expectStillServing();
}

TEST_F(ServerTest, HugeHeaderIs431) {
  auto client = server->client();
  // Just over the limit: the whole request is in the socket buffers before the server answers
  // and closes (a much larger one may meet the closed connection while still being written).
  const auto padding = testing::RunningServer::defaultOptions().headerLimitBytes + 4096;
  client->writeRaw("POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Padding: " +
                   std::string(padding, 'x') + "\r\n\r\n");
  EXPECT_EQ(client->readResponse().status, 431);
  expectStillServing();
}

TEST_F(ServerTest, GarbageInsteadOfHttpIs400) {
  auto client = server->client();
  client->writeRaw(std::string("\x01\x02\x03 not http at all\r\n\r\n"));
  EXPECT_EQ(client->readResponse().status, 400);
  expectStillServing();
}

TEST_F(ServerTest, SlowHeadersAreCutOff) {
  auto client = server->client();
  client->writeRaw("POST /mutate HTTP/1.1\r\nHost: localhost\r\n");
  EXPECT_TRUE(client->closedByPeer()) << "the header deadline closes the connection";
  expectStillServing();
}

TEST_F(ServerTest, PlainHttpOnTheTlsPortGetsNoHttpAnswer) {
  net::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), server->server().tlsPort()));
  const std::string request = "POST /mutate HTTP/1.1\r\nHost: localhost\r\n\r\n";
  net::write(stream, net::buffer(request));
  std::string received;
  beast::error_code error;
  char chunk[512];
  while (!error) {
    const auto bytes = stream.read_some(net::buffer(chunk), error);
    received.append(chunk, bytes);
  }
  EXPECT_TRUE(error == net::error::eof || error == net::error::connection_reset) << error.message();
  EXPECT_EQ(received.find("HTTP/1.1"), std::string::npos);
  EXPECT_GE(server->counter("kcache_tls_handshake_failures_total"), 1);
  expectStillServing();
}

TEST_F(ServerTest, Tls11ClientIsRefused) {
  net::io_context io;
  net::ssl::context context(net::ssl::context::tls_client);
  // Let this client speak TLS 1.1 only, so that the refusal can only come from the server.
  SSL_CTX_set_security_level(context.native_handle(), 0);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(context.native_handle(), TLS1_1_VERSION);
  context.set_verify_mode(net::ssl::verify_none);
  beast::ssl_stream<beast::tcp_stream> stream(io, context);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(stream).connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), server->server().tlsPort()));
  beast::error_code error;
  stream.handshake(net::ssl::stream_base::client, error);
  EXPECT_TRUE(error) << "a TLS 1.1 handshake must fail";
  EXPECT_NE(error, beast::error::timeout);
  expectStillServing();
}

TEST_F(ServerTest, Tls12And13ClientsAreServed) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    net::io_context io;
    net::ssl::context context(net::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context.native_handle(), version);
    SSL_CTX_set_max_proto_version(context.native_handle(), version);
    context.set_verify_mode(net::ssl::verify_none);
    beast::ssl_stream<beast::tcp_stream> stream(io, context);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(stream).connect(
        net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), server->server().tlsPort()));
    beast::error_code error;
    stream.handshake(net::ssl::stream_base::client, error);
    EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(SSL_version(stream.native_handle()), version);
  }
}

}  // namespace
}  // namespace kcache::webhook
