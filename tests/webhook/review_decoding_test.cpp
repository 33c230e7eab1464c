// The review decoder copies out only the parts of the pod that kcache reads. These tests check
// that the decision and the patch built from that view are exactly those built from the whole
// object, on every fixture and on pods of unexpected shapes.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/pod_template.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_review.h"
#include "webhook/decision.h"
#include "webhook/patch.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;

// What a plan says, as text, so that two plans compare in one assertion with a readable diff.
std::string describe(const Plan& plan) {
  if (const auto* skip = std::get_if<Skip>(&plan)) {
    return "skip " + std::string(toString(skip->reason)) + " " + skip->detail;
  }
  if (const auto* failure = std::get_if<Failure>(&plan)) {
    return "error " + std::string(toString(failure->reason)) + " " + failure->detail;
  }
  const auto& lookup = std::get<LookupPlan>(plan);
  return "lookup " + lookup.key + " " + lookup.namespaceName + " " + lookup.podName + " " +
         lookup.templateContainer + " " + std::to_string(lookup.staleness.seconds);
}

std::vector<AdmissionDecision> decisionsFor(const Plan& plan) {
  AdmissionDecision miss;
  miss.outcome = Miss{};
  AdmissionDecision hit;
  Hit found;
  found.entryId = 42;
  found.outputs.argoOutputs = R"({"parameters":[{"name":"p","value":"1"}]})";
  found.outputs.metadataExecutionId = "7";
  hit.outcome = found;
  if (const auto* lookup = std::get_if<LookupPlan>(&plan)) {
    miss.key = lookup->key;
    hit.key = lookup->key;
  }
  return {miss, hit};
}

// Decodes `body` and checks the plan and the patches against those from the full object.
void expectSameAsFullObject(const std::string& body, const std::string& label) {
  SCOPED_TRACE(label);
  const auto decoded = decodeAdmissionReview(body);
  ASSERT_TRUE(decoded) << decoded.error().message;
  AdmissionRequest full = *decoded;
  const json review = json::parse(body);
  full.object = review["request"].value("object", json());

  for (const bool keepNodeRestrictions : {false, true}) {
    AdmissionConfig config;
    config.keepNodeRestrictions = keepNodeRestrictions;
    const Plan fromView = planLookup(*decoded, config);
    EXPECT_EQ(describe(fromView), describe(planLookup(full, config)));
    for (const auto& decision : decisionsFor(fromView)) {
      const auto viewPatch = buildPatch(decoded->object, decision, config);
      const auto fullPatch = buildPatch(full.object, decision, config);
      ASSERT_EQ(viewPatch.has_value(), fullPatch.has_value());
      if (viewPatch) {
        EXPECT_EQ(*viewPatch, *fullPatch);
      }
    }
  }
  const auto viewTemplate = core::findArgoTemplate(decoded->object);
  const auto fullTemplate = core::findArgoTemplate(full.object);
  ASSERT_EQ(viewTemplate.has_value(), fullTemplate.has_value());
  if (viewTemplate) {
    EXPECT_EQ(viewTemplate->argoTemplate, fullTemplate->argoTemplate);
    EXPECT_EQ(viewTemplate->containerName, fullTemplate->containerName);
  }
}

TEST(ReviewDecodingTest, EveryFixtureDecidesAndPatchesAsTheFullObject) {
  const auto names = testing::fixtureNames();
  ASSERT_GE(names.size(), 10u);
  for (const auto& name : names) expectSameAsFullObject(testing::readFixture(name), name);
}

TEST(ReviewDecodingTest, ViewKeepsWhatTheDecisionReadsAndDropsTheRest) {
  const auto decoded = decodeAdmissionReview(testing::readFixture("argo-3.5-v1.json"));
  ASSERT_TRUE(decoded) << decoded.error().message;
  const json full = testing::fixtureJson("argo-3.5-v1.json")["request"]["object"];
  const json& pod = decoded->object;
  EXPECT_EQ(pod["metadata"]["labels"], full["metadata"]["labels"]);
  EXPECT_EQ(pod["metadata"]["annotations"], full["metadata"]["annotations"]);
  EXPECT_EQ(pod["metadata"]["name"], full["metadata"]["name"]);
  // The Workflow owner gives a replayed task result its owner's uid without an API call.
  ASSERT_TRUE(full["metadata"].contains("ownerReferences"));
  EXPECT_EQ(pod["metadata"]["ownerReferences"], full["metadata"]["ownerReferences"]);
  EXPECT_FALSE(pod["metadata"].contains("creationTimestamp"));
  EXPECT_FALSE(pod.contains("status"));
  EXPECT_FALSE(pod["spec"].contains("volumes"));
  EXPECT_TRUE(pod["spec"].contains("affinity"));
  EXPECT_TRUE(pod["spec"].contains("nodeSelector"));
  ASSERT_EQ(pod["spec"]["containers"].size(), full["spec"]["containers"].size());
  EXPECT_EQ(pod["spec"]["containers"][0]["command"], full["spec"]["containers"][0]["command"]);
  EXPECT_FALSE(pod["spec"]["containers"][0].contains("image"));
  // Of the env lists, only the ARGO_TEMPLATE entries are kept.
  for (const auto& container : pod["spec"]["containers"]) {
    for (const auto& variable : container["env"]) EXPECT_EQ(variable["name"], "ARGO_TEMPLATE");
  }
}

// Pods of unexpected shapes: each mutation of the Argo 3.5 fixture must lead to the same plan and
// patch as the full object does (wrong types are kept as wrong types, repeated keys keep the last).
TEST(ReviewDecodingTest, UnexpectedShapesDecideAsTheFullObject) {
  const json base = testing::fixtureJson("argo-3.5-v1.json");
  const std::vector<std::pair<std::string, std::function<void(json&)>>> mutations = {
      {"labels_array", [](json& pod) { pod["metadata"]["labels"] = json::array({1}); }},
      {"annotations_string", [](json& pod) { pod["metadata"]["annotations"] = "x"; }},
      {"no_metadata", [](json& pod) { pod.erase("metadata"); }},
      {"metadata_number", [](json& pod) { pod["metadata"] = 3; }},
      {"spec_array", [](json& pod) { pod["spec"] = json::array(); }},
      {"containers_object", [](json& pod) { pod["spec"]["containers"] = json::object(); }},
      {"containers_empty", [](json& pod) { pod["spec"]["containers"] = json::array(); }},
      {"container_not_object",
       [](json& pod) {
         pod["spec"]["containers"] = json::array({"main", 5, nullptr});
       }},
      {"env_value_number",
       [](json& pod) {
         for (auto& variable : pod["spec"]["containers"][0]["env"]) {
           if (variable["name"] == "ARGO_TEMPLATE") variable["value"] = 12;
         }
       }},
      {"env_value_from_only",
       [](json& pod) {
         for (auto& variable : pod["spec"]["containers"][0]["env"]) {
           if (variable["name"] == "ARGO_TEMPLATE") {
             variable.erase("value");
             variable["valueFrom"] = {{"fieldRef", {{"fieldPath", "metadata.name"}}}};
           }
         }
       }},
      {"template_only_on_init",
       [](json& pod) {
         auto& containers = pod["spec"]["containers"];
         for (auto& container : containers) container.erase("env");
       }},
      {"no_affinity_no_selector",
       [](json& pod) {
         pod["spec"].erase("affinity");
         pod["spec"].erase("nodeSelector");
         pod["spec"].erase("initContainers");
       }},
      {"affinity_null", [](json& pod) { pod["spec"]["affinity"] = nullptr; }},
      {"no_labels_map", [](json& pod) { pod["metadata"].erase("labels"); }},
      {"object_string", [](json& pod) { pod = "pod"; }},
      {"object_null", [](json& pod) { pod = nullptr; }},
      {"tfx_command",
       [](json& pod) {
         auto first = pod["spec"]["containers"][0];
         first["name"] = "main";
         first["command"] = {"python", "/tfx/orchestration/kubeflow/container_entrypoint.py"};
         pod["spec"]["containers"] = json::array({first});
       }},
      {"staleness_annotation",
       [](json& pod) {
         pod["metadata"]["annotations"]["pipelines.kubeflow.org/max_cache_staleness"] = "P0D";
       }},
  };
  for (const auto& [name, mutate] : mutations) {
    json review = base;
    mutate(review["request"]["object"]);
    expectSameAsFullObject(review.dump(), name);
  }
}

TEST(ReviewDecodingTest, RepeatedKeysKeepTheLastValueAsAFullParseDoes) {
  const std::string body =
      R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a",)"
      R"("uid":"b","operation":"DELETE","operation":"CREATE","dryRun":false,"dryRun":true,)"
      R"("resource":{"group":"","version":"v1","resource":"pods"},"object":{"metadata":)"
      R"({"labels":{"pipelines.kubeflow.org/cache_enabled":"false",)"
      R"("pipelines.kubeflow.org/cache_enabled":"true"}},"spec":{"containers":[]}}}})";
  const auto decoded = decodeAdmissionReview(body);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->uid, "b");
  EXPECT_EQ(decoded->operation, "CREATE");
  EXPECT_TRUE(decoded->dryRun);
  expectSameAsFullObject(body, "repeated_keys");
}

TEST(ReviewDecodingTest, NestingLimitIsOnBrackets) {
  auto nested = [](int depth) {
    return R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",)"
           R"("x":)" +
           std::string(depth - 2, '[') + std::string(depth - 2, ']') + "}}";
  };
  const auto atLimit = decodeAdmissionReview(nested(kMaxReviewNestingDepth));
  EXPECT_TRUE(atLimit) << atLimit.error().message;
  const auto overLimit = decodeAdmissionReview(nested(kMaxReviewNestingDepth + 1));
  ASSERT_FALSE(overLimit);
  EXPECT_NE(overLimit.error().message.find("nested deeper than 512 levels"), std::string::npos)
      << overLimit.error().message;
}

// simdjson refuses integers beyond 64 bits (a JSON library may read them as doubles). The API
// server serializes typed pods, which cannot hold one; such a body is refused with a reason.
TEST(ReviewDecodingTest, IntegersBeyondSixtyFourBitsAreRefusedWithAReason) {
  const std::string body =
      R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",)"
      R"("object":{"spec":{"priority":123456789012345678901234567890}}}})";
  const auto decoded = decodeAdmissionReview(body);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().message.find("could not decode the AdmissionReview"), std::string::npos)
      << decoded.error().message;
}

TEST(ReviewDecodingTest, LargeBodiesDecodeWithAParserOfTheirOwn) {
  json review = testing::fixtureJson("argo-3.5-v1.json");
  // Over the size of the reused parser: the same decisions, and a small review afterwards still
  // decodes with the reused one.
  review["request"]["object"]["metadata"]["annotations"]["padding"] = std::string(300 * 1024, 'x');
  expectSameAsFullObject(review.dump(), "large");
  expectSameAsFullObject(testing::readFixture("argo-3.5-v1.json"), "small_after_large");
}

}  // namespace
}  // namespace kcache::webhook
