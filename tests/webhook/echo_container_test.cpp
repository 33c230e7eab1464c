// The echo container of a hit passes whatever admission the original pod passed (Pod Security,
// ResourceQuota), and a hit whose annotations would exceed Kubernetes' 256 KiB limit is never a
// refused pod. The same rules are checked against a real kube-apiserver in tests/cluster.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "core/pod_contract.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_review.h"
#include "webhook/patch.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
namespace contract = core::contract;

const std::string kKey(64, 'a');
const std::string kOutputsAnnotation(contract::kArgoOutputsAnnotation);
const std::string kKeyAnnotation(contract::kExecutionCacheKeyAnnotation);
const std::string kCompletedAnnotation(contract::kArgoReportOutputsCompleted);

json argoPod() {
  return testing::fixtureJson("argo-3.5-v1.json").at("request").at("object");
}

json& mainOf(json& pod) {
  for (auto& container : pod["spec"]["containers"]) {
    if (container["name"] == "main") return container;
  }
  throw std::runtime_error("fixture without main");
}

AdmissionDecision hitWith(std::string outputs, OutputsDelivery delivery) {
  AdmissionDecision decision;
  decision.key = kKey;
  decision.outcome = Hit{7, {std::move(outputs), "42"}, 300};
  decision.outputsDelivery = delivery;
  return decision;
}

json patched(const json& pod, const AdmissionDecision& decision) {
  const auto patch = buildPatch(pod, decision, AdmissionConfig{});
  EXPECT_TRUE(patch.has_value());
  return pod.patch(*patch);
}

json echoOf(const json& pod) {
  const json result = patched(pod, hitWith("{}", OutputsDelivery::kTaskResult));
  EXPECT_EQ(result["spec"]["containers"].size(), 1u);
  return result["spec"]["containers"][0];
}

bool isEcho(const json& pod) {
  return pod["spec"]["containers"].size() == 1 &&
         pod["spec"]["containers"][0]["command"][0] == "echo";
}

TEST(EchoContainerTest, CopiesTheMainContainersSecurityContext) {
  json pod = argoPod();
  const json restricted = json::parse(R"({"allowPrivilegeEscalation": false,
      "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "runAsUser": 1000,
      "readOnlyRootFilesystem": true, "seccompProfile": {"type": "RuntimeDefault"}})");
  mainOf(pod)["securityContext"] = restricted;
  EXPECT_EQ(echoOf(pod)["securityContext"], restricted);
}

TEST(EchoContainerTest, WithoutOneGetsADefaultEveryPodSecurityLevelAccepts) {
  const json echo = echoOf(argoPod());
  EXPECT_EQ(echo["securityContext"], json::parse(R"({"allowPrivilegeEscalation": false,
      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})"));
}

TEST(EchoContainerTest, RunsAsNobodyWhenTheRootUserIsRefusedButNoUserIsNamed) {
  json pod = argoPod();
  pod["spec"]["securityContext"] = {{"runAsNonRoot", true}};
  EXPECT_EQ(echoOf(pod)["securityContext"]["runAsUser"], 65534);

  // A user named by the pod or by main is kept as it is.
  pod["spec"]["securityContext"]["runAsUser"] = 1000;
  EXPECT_FALSE(echoOf(pod)["securityContext"].contains("runAsUser"));
  pod["spec"]["securityContext"].erase("runAsUser");
  mainOf(pod)["securityContext"] = {{"runAsUser", 2000}};
  EXPECT_EQ(echoOf(pod)["securityContext"], json({{"runAsUser", 2000}}));

  // main allowing root overrides the pod's demand.
  mainOf(pod)["securityContext"] = {{"runAsNonRoot", false}};
  EXPECT_FALSE(echoOf(pod)["securityContext"].contains("runAsUser"));
}

TEST(EchoContainerTest, WindowsPodsGetNoLinuxDefaults) {
  json pod = argoPod();
  pod["spec"]["os"] = {{"name", "windows"}};
  EXPECT_FALSE(echoOf(pod).contains("securityContext"));
}

TEST(EchoContainerTest, LimitsEqualSmallRequestsAndNothingOfMainsResources) {
  json pod = argoPod();  // main requests 2 CPUs, 4Gi and a GPU
  const json resources = echoOf(pod)["resources"];
  EXPECT_EQ(resources, json::parse(R"({"requests": {"cpu": "10m", "memory": "16Mi"},
                                       "limits": {"cpu": "10m", "memory": "16Mi"}})"));
  mainOf(pod)["resources"]["limits"]["ephemeral-storage"] = "2Gi";
  EXPECT_EQ(echoOf(pod)["resources"]["limits"]["ephemeral-storage"], "16Mi");
  EXPECT_EQ(echoOf(pod)["resources"]["requests"]["ephemeral-storage"], "16Mi");
}

TEST(EchoContainerTest, PodLevelSettingsStay) {
  json pod = argoPod();
  pod["spec"]["securityContext"] = {{"runAsNonRoot", true}, {"runAsUser", 1000}, {"fsGroup", 100}};
  pod["spec"]["imagePullSecrets"] = json::array({{{"name", "registry"}}});
  const json result = patched(pod, hitWith("{}", OutputsDelivery::kTaskResult));
  EXPECT_EQ(result["spec"]["securityContext"], pod["spec"]["securityContext"]);
  EXPECT_EQ(result["spec"]["imagePullSecrets"], pod["spec"]["imagePullSecrets"]);
}

TEST(EchoContainerTest, IsWhatItMakesOfItself) {
  json pod = argoPod();
  pod["spec"]["securityContext"] = {{"runAsNonRoot", true}};
  const json once = patched(pod, hitWith("{}", OutputsDelivery::kTaskResult));
  EXPECT_EQ(cachedStepContainer(once, AdmissionConfig{}), once["spec"]["containers"][0]);
}

TEST(EchoContainerTest, TheReviewDecoderKeepsWhatTheEchoInherits) {
  json review = testing::fixtureJson("argo-3.5-v1.json");
  json& pod = review["request"]["object"];
  pod["spec"]["securityContext"] = {{"runAsNonRoot", true}};
  mainOf(pod)["securityContext"] = {{"allowPrivilegeEscalation", false}};
  const auto decoded = decodeAdmissionReview(review.dump());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(cachedStepContainer(decoded.value().object, AdmissionConfig{}),
            cachedStepContainer(pod, AdmissionConfig{}));
  EXPECT_EQ(cachedStepContainer(pod, AdmissionConfig{})["securityContext"],
            json({{"allowPrivilegeEscalation", false}, {"runAsUser", 65534}}));
}

// Outputs whose value makes the pod's annotations, after the hit's patch, exactly `total` bytes.
std::string outputsForTotal(const json& pod, OutputsDelivery delivery, std::size_t total) {
  std::size_t others = kKeyAnnotation.size() + kKey.size() + kOutputsAnnotation.size();
  if (delivery == OutputsDelivery::kAnnotation) others += kCompletedAnnotation.size() + 4;
  for (const auto& [key, value] : pod["metadata"]["annotations"].items()) {
    if (key != kKeyAnnotation && key != kOutputsAnnotation && key != kCompletedAnnotation) {
      others += key.size() + value.get<std::string>().size();
    }
  }
  const std::string prefix = R"({"parameters":[{"name":"p","value":")";
  const std::string suffix = R"("}]})";
  return prefix + std::string(total - others - prefix.size() - suffix.size(), 'x') + suffix;
}

std::size_t annotationBytes(const json& pod) {
  std::size_t total = 0;
  for (const auto& [key, value] : pod["metadata"]["annotations"].items()) {
    total += key.size() + value.get<std::string>().size();
  }
  return total;
}

TEST(HitAnnotationsTest, OutputsUpToTheLimitAreRestored) {
  const json pod = argoPod();
  for (const auto delivery : {OutputsDelivery::kAnnotation, OutputsDelivery::kTaskResult}) {
    const auto decision =
        hitWith(outputsForTotal(pod, delivery, kAnnotationsSizeLimitBytes), delivery);
    EXPECT_EQ(hitAnnotationsFit(pod, decision), HitAnnotationsFit::kWithOutputs);
    const json result = patched(pod, decision);
    EXPECT_TRUE(isEcho(result));
    EXPECT_EQ(annotationBytes(result), kAnnotationsSizeLimitBytes);
  }
}

TEST(HitAnnotationsTest, OneByteOverWithAnnotationDeliveryRunsTheStepAsAMiss) {
  const json pod = argoPod();
  const auto decision =
      hitWith(outputsForTotal(pod, OutputsDelivery::kAnnotation, kAnnotationsSizeLimitBytes + 1),
              OutputsDelivery::kAnnotation);
  EXPECT_EQ(hitAnnotationsFit(pod, decision), HitAnnotationsFit::kTooLarge);
  const json result = patched(pod, decision);
  EXPECT_FALSE(isEcho(result));
  EXPECT_EQ(result["spec"], pod["spec"]);
  EXPECT_EQ(result["metadata"]["labels"][std::string(contract::kCacheIdLabel)], "");
  EXPECT_EQ(result["metadata"]["annotations"][kKeyAnnotation], kKey);
  EXPECT_FALSE(result["metadata"]["annotations"].contains(kOutputsAnnotation));
}

TEST(HitAnnotationsTest, OverTheLimitWithTaskResultDeliveryLeavesTheAnnotationOut) {
  const json pod = argoPod();
  const auto decision =
      hitWith(outputsForTotal(pod, OutputsDelivery::kTaskResult, 2 * kAnnotationsSizeLimitBytes),
              OutputsDelivery::kTaskResult);
  EXPECT_EQ(hitAnnotationsFit(pod, decision), HitAnnotationsFit::kWithoutOutputs);
  const json result = patched(pod, decision);
  EXPECT_TRUE(isEcho(result));
  EXPECT_FALSE(result["metadata"]["annotations"].contains(kOutputsAnnotation));
  EXPECT_EQ(result["metadata"]["annotations"][kKeyAnnotation], kKey);
  EXPECT_EQ(result["metadata"]["labels"][std::string(contract::kCacheIdLabel)], "7");
}

TEST(HitAnnotationsTest, ThePodsOwnAnnotationsCountAndAReplacedOneCountsOnce) {
  json pod = argoPod();
  pod["metadata"]["annotations"]["big"] = std::string(kAnnotationsSizeLimitBytes - 200, 'y');
  const auto small = hitWith(R"({"parameters":[]})", OutputsDelivery::kAnnotation);
  EXPECT_EQ(hitAnnotationsFit(pod, small), HitAnnotationsFit::kTooLarge);

  json stale = argoPod();
  stale["metadata"]["annotations"][kOutputsAnnotation] =
      std::string(kAnnotationsSizeLimitBytes / 2, 'z');
  const auto decision =
      hitWith(outputsForTotal(stale, OutputsDelivery::kAnnotation, kAnnotationsSizeLimitBytes),
              OutputsDelivery::kAnnotation);
  EXPECT_EQ(hitAnnotationsFit(stale, decision), HitAnnotationsFit::kWithOutputs);
}

TEST(HitAnnotationsTest, MissesAndSkipsAlwaysFit) {
  AdmissionDecision miss;
  miss.key = kKey;
  miss.outcome = Miss{};
  EXPECT_EQ(hitAnnotationsFit(argoPod(), miss), HitAnnotationsFit::kWithOutputs);
}

}  // namespace
}  // namespace kcache::webhook
