// The server's answer is written as text (webhook/patch.cpp, encodeAdmissionResponse) instead of
// being built as a JSON tree and dumped. These tests build the same patch and answer as nlohmann
// trees, the way kcache did before, and require the written text to be byte for byte their dump,
// for every fixture, every decision, both node-restriction settings and values that need escaping.
#include <gtest/gtest.h>

#include <vector>

#include "core/pod_contract.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_review.h"
#include "webhook/decision.h"
#include "webhook/patch.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
namespace contract = core::contract;

// The tree-based reference: one op per label or annotation key into an existing map, or the map.
void addToMetadataMap(json& patch, const json& pod, const std::string& mapName,
                      const std::vector<std::pair<std::string, std::string>>& entries) {
  const json& metadata = pod.contains("metadata") ? pod["metadata"] : json();
  if (metadata.is_object() && metadata.contains(mapName) && metadata[mapName].is_object()) {
    for (const auto& [key, value] : entries) {
      std::string path = "/metadata/";
      path += mapName;
      path += '/';
      path += escapePointerToken(key);
      patch.push_back({{"op", "add"}, {"path", path}, {"value", value}});
    }
    return;
  }
  json map = json::object();
  for (const auto& [key, value] : entries) map[key] = value;
  std::string path = "/metadata/";
  path += mapName;
  patch.push_back({{"op", "add"}, {"path", path}, {"value", map}});
}

bool has(const json& pod, const char* member) {
  return pod.contains("spec") && pod["spec"].is_object() && pod["spec"].contains(member);
}

std::optional<json> referencePatch(const json& pod, const AdmissionDecision& decision,
                                   const AdmissionConfig& config) {
  json patch = json::array();
  if (const auto* hit = std::get_if<Hit>(&decision.outcome)) {
    patch.push_back({{"op", "replace"},
                     {"path", "/spec/containers"},
                     {"value", json::array({cachedStepContainer(pod, config)})}});
    if (!config.keepNodeRestrictions) {
      if (has(pod, "affinity")) patch.push_back({{"op", "remove"}, {"path", "/spec/affinity"}});
      if (has(pod, "nodeSelector")) {
        patch.push_back({{"op", "remove"}, {"path", "/spec/nodeSelector"}});
      }
    }
    if (has(pod, "initContainers")) {
      patch.push_back({{"op", "remove"}, {"path", "/spec/initContainers"}});
    }
    std::vector<std::pair<std::string, std::string>> annotations{
        {std::string(contract::kExecutionCacheKeyAnnotation), decision.key},
        {std::string(contract::kArgoOutputsAnnotation), hit->outputs.argoOutputs}};
    if (decision.outputsDelivery == OutputsDelivery::kAnnotation) {
      annotations.emplace_back(contract::kArgoReportOutputsCompleted, contract::kTrue);
    }
    addToMetadataMap(patch, pod, "annotations", annotations);
    addToMetadataMap(
        patch, pod, "labels",
        {{std::string(contract::kCacheIdLabel), std::to_string(hit->entryId)},
         {std::string(contract::kReusedFromCacheLabel), "true"},
         {std::string(contract::kMetadataExecutionIdLabel), hit->outputs.metadataExecutionId},
         {std::string(contract::kMetadataWrittenLabel), "true"}});
    return patch;
  }
  if (std::holds_alternative<Miss>(decision.outcome)) {
    addToMetadataMap(patch, pod, "annotations",
                     {{std::string(contract::kExecutionCacheKeyAnnotation), decision.key}});
    addToMetadataMap(patch, pod, "labels", {{std::string(contract::kCacheIdLabel), ""}});
    return patch;
  }
  return std::nullopt;
}

std::string dumped(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Outputs and execution ids as the store may hold them: plain, with quotes and backslashes,
// control characters, non-ASCII, and bytes that are not UTF-8.
std::vector<Hit> hits() {
  std::vector<Hit> found;
  const std::vector<std::pair<std::string, std::string>> outputs = {
      {R"({"parameters":[{"name":"p","value":"1"}]})", "7"},
      {"{\"parameters\":[{\"name\":\"q\",\"value\":\"a\\\"b\\\\c\\n\\u0001\"}]}\n\t\r\b\f", "x\"y"},
      {"\x01\x1f\x7f <tag> & \xc3\xbc \xe2\x80\xa8 \xf0\x9f\x98\x80", "\\"},
      {"cut \xc3", "\xff\xfe"},
      {"overlong \xc0\xaf and surrogate \xed\xa0\x80 end", ""},
  };
  int64_t id = 1;
  for (const auto& [argoOutputs, executionId] : outputs) {
    Hit hit;
    hit.entryId = id++ * 1000003;
    hit.outputs.argoOutputs = argoOutputs;
    hit.outputs.metadataExecutionId = executionId;
    found.push_back(hit);
  }
  return found;
}

std::vector<AdmissionDecision> decisions(const std::string& key) {
  std::vector<AdmissionDecision> all;
  AdmissionDecision miss;
  miss.key = key;
  miss.outcome = Miss{};
  all.push_back(miss);
  for (const auto& hit : hits()) {
    for (auto delivery : {OutputsDelivery::kAnnotation, OutputsDelivery::kTaskResult}) {
      AdmissionDecision decision;
      decision.key = key;
      decision.outcome = hit;
      decision.outputsDelivery = delivery;
      all.push_back(decision);
    }
  }
  AdmissionDecision skip;
  skip.outcome = Skip{SkipReason::kCacheNotEnabled, ""};
  all.push_back(skip);
  return all;
}

// The pod of a fixture as decoded, and the same pod without label and annotation maps, and
// without metadata maps, affinity, node selector or init containers.
std::vector<json> podsOf(const std::string& body) {
  const auto decoded = decodeAdmissionReview(body);
  EXPECT_TRUE(decoded) << decoded.error().message;
  if (!decoded) return {};
  std::vector<json> pods{decoded->object};
  json bare = decoded->object;
  if (bare.is_object() && bare["metadata"].is_object()) {
    bare["metadata"].erase("labels");
    bare["metadata"].erase("annotations");
  }
  if (bare.is_object() && bare["spec"].is_object()) {
    bare["spec"].erase("affinity");
    bare["spec"].erase("nodeSelector");
    bare["spec"].erase("initContainers");
  }
  pods.push_back(bare);
  return pods;
}

void expectWrittenAsTree(const json& pod, const AdmissionDecision& decision,
                         const AdmissionConfig& config) {
  const auto written = buildPatch(pod, decision, config);
  const auto reference = referencePatch(pod, decision, config);
  ASSERT_EQ(written.has_value(), reference.has_value());
  if (!written) return;
  EXPECT_EQ(written->text(), dumped(*reference));
  // And it still applies to pods as the decision patches them (metadata and containers exist).
  if (pod.is_object() && pod.contains("metadata") && pod["metadata"].is_object() &&
      has(pod, "containers")) {
    EXPECT_NO_THROW((void)pod.patch(*written));
  }

  AdmissionRequest request;
  request.apiVersion = "admission.k8s.io/v1";
  request.kind = "AdmissionReview";
  request.uid = "uid-\"\\-\n-\xc3\xa9";
  AdmissionResponse response;
  response.patch = written;
  const json answer = {{"apiVersion", request.apiVersion},
                       {"kind", request.kind},
                       {"response",
                        {{"uid", request.uid},
                         {"allowed", true},
                         {"patchType", "JSONPatch"},
                         {"patch", base64Encode(dumped(*reference))}}}};
  EXPECT_EQ(encodeAdmissionResponse(request, response), answer.dump());
}

TEST(AnswerTextTest, PatchAndAnswerAreTheDumpOfTheTreeForEveryFixture) {
  const auto names = testing::fixtureNames();
  ASSERT_GE(names.size(), 10u);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    for (const auto& pod : podsOf(testing::readFixture(name))) {
      for (const bool keepNodeRestrictions : {false, true}) {
        for (const std::string image : {"busybox", "registry.local/busy\"box\\:1"}) {
          AdmissionConfig config;
          config.keepNodeRestrictions = keepNodeRestrictions;
          config.cacheImage = image;
          for (const auto& decision : decisions(std::string(64, 'c'))) {
            expectWrittenAsTree(pod, decision, config);
          }
        }
      }
    }
  }
}

TEST(AnswerTextTest, StringsAreEscapedAsNlohmannDumpsThem) {
  std::vector<std::string> values = {"",
                                     "plain",
                                     "\"\\/",
                                     std::string("nul\0inside", 10),
                                     "\x7f\xc2\x80\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf",
                                     "\xf4\x90\x80\x80",
                                     "\xe0\x80\x80",
                                     "a\x80"
                                     "b",
                                     "\xc3\xa9\xc3"};
  for (int c = 0; c < 0x20; ++c) values.push_back(std::string(1, static_cast<char>(c)));
  for (const auto& value : values) {
    std::string written = "x";
    appendJsonString(written, value);
    std::string expected = "x";
    expected += dumped(json(value));
    EXPECT_EQ(written, expected) << dumped(json(value));
  }
}

TEST(AnswerTextTest, APatchBuiltAsJsonKeepsItsDump) {
  const json tree = json::parse(R"([{"op":"add","path":"/metadata/labels/a~1b","value":"ü\n"}])");
  const JsonPatch patch(tree);
  EXPECT_EQ(patch.text(), tree.dump());
  EXPECT_EQ(json(patch), tree);
  EXPECT_TRUE(tree == patch);
  EXPECT_FALSE(json::array() == patch);
}

}  // namespace
}  // namespace kcache::webhook
