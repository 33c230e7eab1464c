// AdmissionReview decoding/encoding and the metrics registry.
#include <gtest/gtest.h>

#include <thread>

#include "core/metrics.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_review.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;

TEST(AdmissionReviewTest, DecodesV1AndV1beta1) {
  for (const char* fixture : {"argo-3.5-v1.json", "argo-3.3-v1beta1.json"}) {
    const auto text = testing::readFixture(fixture);
    const auto decoded = decodeAdmissionReview(text);
    ASSERT_TRUE(decoded) << decoded.error().message;
    const auto expected = json::parse(text);
    EXPECT_EQ(decoded->apiVersion, expected["apiVersion"]);
    EXPECT_EQ(decoded->uid, expected["request"]["uid"]);
    EXPECT_EQ(decoded->namespaceName, "team-a");
    EXPECT_EQ(decoded->operation, "CREATE");
    EXPECT_EQ(decoded->resourceName, "pods");
    // The pod view holds what the decision reads (its equivalence: review_decoding_test.cpp).
    EXPECT_EQ(decoded->object["metadata"]["labels"],
              expected["request"]["object"]["metadata"]["labels"]);
  }
}

TEST(AdmissionReviewTest, RejectsWhatIsNotAReview) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "could not decode"},
      {"{\"apiVersion\":", "could not decode"},
      {"[]", "not a JSON object"},
      {R"({"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}})",
       "unsupported AdmissionReview apiVersion"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u"}})",
       "unsupported kind"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null})",
       "request is missing or null"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})", "request is missing"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":"x"})",
       "request is not an object"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}})",
       "request.uid is missing"},
      {std::string(2000, '[') + std::string(2000, ']'), "nested deeper"},
      {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":"
       "\"\xff\xfe\"}}",
       "could not decode"},
  };
  for (const auto& [body, message] : cases) {
    const auto decoded = decodeAdmissionReview(body);
    ASSERT_FALSE(decoded) << body.substr(0, 80);
    EXPECT_NE(decoded.error().message.find(message), std::string::npos) << decoded.error().message;
  }
}

TEST(AdmissionReviewTest, EncodesInTheRequestVersion) {
  AdmissionRequest request;
  request.apiVersion = "admission.k8s.io/v1beta1";
  request.kind = "AdmissionReview";
  request.uid = "abc";
  const auto withoutPatch = json::parse(encodeAdmissionResponse(request, {}));
  EXPECT_EQ(withoutPatch,
            json::parse(R"({"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview",
                            "response":{"uid":"abc","allowed":true}})"));
  AdmissionResponse response;
  response.patch = json::parse(R"([{"op":"add","path":"/a","value":"b"}])");
  const auto withPatch = json::parse(encodeAdmissionResponse(request, response));
  EXPECT_EQ(withPatch["response"]["patchType"], "JSONPatch");
  EXPECT_EQ(json::parse(testing::base64Decode(withPatch["response"]["patch"])), *response.patch);
}

// The answer is written by hand; it must be byte for byte what serializing the same review with a
// JSON library gives (members sorted), including a uid that needs escaping.
TEST(AdmissionReviewTest, AnswerIsByteIdenticalToASerializedReview) {
  AdmissionRequest request;
  request.apiVersion = "admission.k8s.io/v1";
  request.kind = "AdmissionReview";
  request.uid = "0a1b-\"quoted\"\\ \n";
  AdmissionResponse response;
  response.patch = json::parse(R"([{"op":"add","path":"/metadata/labels/x","value":"ü"}])");
  for (const bool withPatch : {false, true}) {
    json answer = {{"uid", request.uid}, {"allowed", true}};
    if (withPatch) {
      answer["patchType"] = "JSONPatch";
      answer["patch"] = base64Encode(response.patch->dump());
    }
    const json review = {
        {"apiVersion", request.apiVersion}, {"kind", request.kind}, {"response", answer}};
    EXPECT_EQ(encodeAdmissionResponse(request, withPatch ? response : AdmissionResponse{}),
              review.dump());
  }
}

TEST(AdmissionReviewTest, Base64AppendsToWhatIsThere) {
  std::string out = "x:";
  appendBase64(out, "foobar");
  appendBase64(out, "fo");
  EXPECT_EQ(out, "x:Zm9vYmFyZm8=");
}

TEST(AdmissionReviewTest, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("null"), "bnVsbA==");
}

TEST(MetricsTest, SameNameAndLabelsGiveTheSameObject) {
  core::MetricsRegistry registry;
  auto& a = registry.counter("x_total", "X.", {{"k", "v"}});
  auto& b = registry.counter("x_total", "X.", {{"k", "v"}});
  auto& c = registry.counter("x_total", "X.", {{"k", "w"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_THROW(registry.gauge("x_total", "X."), std::logic_error);
}

TEST(MetricsTest, RendersTheTextFormat) {
  core::MetricsRegistry registry;
  registry.counter("requests_total", "Requests \\ seen.", {{"outcome", "hit \"quoted\"\n"}}).inc(2);
  registry.counter("requests_total", "Requests \\ seen.", {{"outcome", "hit \"quoted\"\n"}})
      .inc(-5);  // ignored: counters only go up
  registry.gauge("leader", "Leader status.").set(1);
  auto& histogram = registry.histogram("latency_seconds", "Latency.", {0.01, 0.001, 0.1});
  histogram.observe(0.0005);
  histogram.observe(0.001);
  histogram.observe(0.05);
  histogram.observe(7);
  EXPECT_EQ(registry.renderPrometheusText(),
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{le=\"0.001\"} 2\n"
            "latency_seconds_bucket{le=\"0.01\"} 2\n"
            "latency_seconds_bucket{le=\"0.1\"} 3\n"
            "latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "latency_seconds_sum 7.0515\n"
            "latency_seconds_count 4\n"
            "# HELP leader Leader status.\n"
            "# TYPE leader gauge\n"
            "leader 1\n"
            "# HELP requests_total Requests \\\\ seen.\n"
            "# TYPE requests_total counter\n"
            "requests_total{outcome=\"hit \\\"quoted\\\"\\n\"} 2\n");
}

TEST(MetricsTest, CountersAreThreadSafe) {
  core::MetricsRegistry registry;
  auto& counter = registry.counter("n_total", "N.");
  auto& histogram = registry.histogram("h", "H.", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.inc();
        histogram.observe(0.5);
        registry.gauge("g", "G.").add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), 40000);
  EXPECT_EQ(registry.gauge("g", "G.").value(), 40000);
  EXPECT_NE(registry.renderPrometheusText().find("h_count 40000\n"), std::string::npos);
}

}  // namespace
}  // namespace kcache::webhook
