// The admission decision and patch, end to end through AdmissionHandler::handle (no network):
// every skip rule, miss, hit, both review versions, both scopes, staleness combinations, pods
// without annotations, CACHE_IMAGE and CACHE_NODE_RESTRICTIONS. Patches are applied with
// nlohmann's json::patch() and the resulting pod is checked.
#include <gtest/gtest.h>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "tests/support/test_stamp_keys.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_handler.h"
#include "webhook/config.h"
#include "webhook/patch.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
using testing::AppliedAnswer;
using testing::MemoryLookup;
namespace contract = core::contract;

constexpr int64_t kNow = 1'800'000'000;
constexpr const char* kOutputs =
    R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],"artifacts":[{"name":"train-model","s3":{"key":"artifacts/run-1/model.tgz"}}],"exitCode":"0"})";

// The key the webhook computes for the review's pod in `scope`, for a pod of `namespaceName`.
std::string keyFor(const json& review, store::CacheScope scope, const std::string& namespaceName) {
  const auto found = core::findArgoTemplate(review.at("request").at("object"));
  EXPECT_TRUE(found.has_value());
  return core::computeExecutionKey(found->argoTemplate, store::keyBindingOf(scope), namespaceName)
      .value()
      .hex();
}

// The template-only key (Kubeflow before 2.18, audit mode's legacy rows).
std::string legacyKeyOf(const json& review) {
  return keyFor(review, store::CacheScope::kCluster, "");
}

const json& podOf(const json& review) {
  return review.at("request").at("object");
}

class AdmissionLogicTest : public ::testing::Test {
 protected:
  // The key of the scope in force for the review's own pod.
  std::string keyOf(const json& review) const {
    return keyFor(review, config.scope, review.at("request").at("namespace"));
  }

  AppliedAnswer admit(const json& review) {
    AdmissionHandler handler(config, lookup, metrics, nullptr, [] { return kNow; });
    const auto answer = handler.handle(review.dump());
    EXPECT_EQ(answer.httpStatus, 200) << answer.body;
    auto applied = testing::applyAnswer(podOf(review), answer.body);
    EXPECT_TRUE(applied.allowed);
    EXPECT_EQ(applied.review.at("apiVersion"), review.at("apiVersion"));
    EXPECT_EQ(applied.review.at("kind"), "AdmissionReview");
    EXPECT_EQ(applied.review.at("response").at("uid"), review.at("request").at("uid"));
    if (applied.hasPatch) {
      EXPECT_EQ(applied.review.at("response").at("patchType"), "JSONPatch");
    } else {
      EXPECT_FALSE(applied.review.at("response").contains("patchType"));
    }
    return applied;
  }

  int64_t record(const json& review, const std::string& namespaceName, int64_t ageSeconds = 60,
                 int64_t maxStaleness = -1) {
    store::CacheEntry entry;
    entry.key = keyFor(review, config.scope, namespaceName);
    entry.namespaceName = namespaceName;
    entry.podName = "earlier-pod";
    entry.executionOutput = core::encodeExecutionOutput({kOutputs, "42"});
    entry.maxCacheStaleness = maxStaleness;
    entry.startedAtInSec = kNow - ageSeconds;
    entry.endedAtInSec = entry.startedAtInSec;
    entry.runDurationSeconds = 300;
    return lookup.add(entry);
  }

  double counterValue(const std::string& name, const core::MetricLabels& labels) {
    return metrics.counter(name, "", labels).value();
  }

  void expectSkipped(const std::string& fixture, const std::string& reason) {
    const auto review = testing::fixtureJson(fixture);
    const auto applied = admit(review);
    EXPECT_FALSE(applied.hasPatch) << fixture;
    EXPECT_EQ(applied.patchedPod, podOf(review));
    EXPECT_EQ(counterValue("kcache_admission_skips_total", {{"reason", reason}}), 1) << fixture;
    EXPECT_EQ(lookup.lookups(), 0) << fixture << " must not reach the store";
  }

  // A miss tags the pod with its key and the stamp that lets the watcher record it, bound to
  // the pod's name and the staleness it will be recorded with (`recordedStaleness`).
  void expectMissPatch(const json& review, const AppliedAnswer& applied,
                       int64_t recordedStaleness = -1) {
    ASSERT_TRUE(applied.hasPatch);
    json expected = podOf(review);
    expected["metadata"]["annotations"][std::string(contract::kExecutionCacheKeyAnnotation)] =
        keyOf(review);
    expected["metadata"]["annotations"][std::string(contract::kAdmissionStampAnnotation)] =
        kcache::testing::testStampOf(review["request"]["namespace"],
                                     podOf(review)["metadata"]["name"], keyOf(review),
                                     recordedStaleness);
    expected["metadata"]["labels"][std::string(contract::kCacheIdLabel)] = "";
    EXPECT_EQ(applied.patchedPod, expected) << "a miss only tags and stamps the pod";
  }

  void expectHitPod(const json& review, const AppliedAnswer& applied, int64_t entryId) {
    ASSERT_TRUE(applied.hasPatch);
    const json& pod = applied.patchedPod;
    const json& original = podOf(review);
    ASSERT_EQ(pod["spec"]["containers"].size(), 1u);
    EXPECT_EQ(pod["spec"]["containers"][0], json::parse(R"({"name":"main",
        "image":"ghcr.io/containerd/busybox",
        "command":["echo","\"This step output is taken from cache.\""],
        "resources":{"requests":{"cpu":"10m","memory":"16Mi"},"limits":{"cpu":"10m","memory":"16Mi"}},
        "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},
                           "seccompProfile":{"type":"RuntimeDefault"}}})"));
    EXPECT_FALSE(pod["spec"].contains("initContainers"));
    EXPECT_FALSE(pod["spec"].contains("affinity"));
    EXPECT_FALSE(pod["spec"].contains("nodeSelector"));
    EXPECT_EQ(pod["spec"]["tolerations"], original["spec"]["tolerations"]);
    EXPECT_EQ(pod["spec"]["volumes"], original["spec"]["volumes"]);
    const json& annotations = pod["metadata"]["annotations"];
    EXPECT_EQ(annotations[std::string(contract::kExecutionCacheKeyAnnotation)], keyOf(review));
    EXPECT_EQ(annotations[std::string(contract::kArgoOutputsAnnotation)], kOutputs);
    const json& labels = pod["metadata"]["labels"];
    EXPECT_EQ(labels[std::string(contract::kCacheIdLabel)], std::to_string(entryId));
    EXPECT_EQ(labels[std::string(contract::kReusedFromCacheLabel)], "true");
    EXPECT_EQ(labels[std::string(contract::kMetadataExecutionIdLabel)], "42");
    EXPECT_EQ(labels[std::string(contract::kMetadataWrittenLabel)], "true");
    // Everything other webhooks or Argo set stays.
    for (const auto& [name, value] : original["metadata"]["labels"].items()) {
      EXPECT_EQ(labels[name], value) << name;
    }
    if (original["metadata"].contains("annotations")) {
      for (const auto& [name, value] : original["metadata"]["annotations"].items()) {
        EXPECT_EQ(annotations[name], value) << name;
      }
    }
  }

  MemoryLookup lookup;
  core::MetricsRegistry metrics;
  AdmissionConfig config = [] {
    AdmissionConfig stamped;
    stamped.admissionStamps = kcache::testing::sharedTestStampKeys();
    return stamped;
  }();
};

TEST_F(AdmissionLogicTest, SkipsKubeSystem) {
  expectSkipped("skip-kube-system-v1beta1.json", "system_namespace");
}
TEST_F(AdmissionLogicTest, SkipsPodsWithoutCacheEnabledLabel) {
  expectSkipped("skip-cache-not-enabled-v1.json", "cache_not_enabled");
}
TEST_F(AdmissionLogicTest, SkipsTfxByLabel) {
  expectSkipped("skip-tfx-label-v1.json", "tfx");
}
TEST_F(AdmissionLogicTest, SkipsTfxByEntrypoint) {
  expectSkipped("skip-tfx-entrypoint-v1.json", "tfx");
}
// A TFX step as Argo lays its pod out: `wait` first, then `main` running TFX's entrypoint. The
// label and the entrypoint each suffice, as in Kubeflow, whatever the number of containers.
json tfxReviewAsArgoLaysItOut() {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  auto& containers = review["request"]["object"]["spec"]["containers"];
  EXPECT_GE(containers.size(), 2u);
  EXPECT_EQ(containers[0]["name"], "wait");
  bool foundMain = false;
  for (auto& container : containers) {
    if (container["name"] != "main") continue;
    container["command"] = {"python", "-m",
                            "/tfx-src/tfx/orchestration/kubeflow/container_entrypoint.py"};
    foundMain = true;
  }
  EXPECT_TRUE(foundMain);
  return review;
}

TEST_F(AdmissionLogicTest, SkipsTfxByEntrypointOnMainBesideWait) {
  const auto review = tfxReviewAsArgoLaysItOut();
  EXPECT_FALSE(admit(review).hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_skips_total", {{"reason", "tfx"}}), 1);
  EXPECT_EQ(lookup.lookups(), 0);
}

TEST_F(AdmissionLogicTest, SkipsTfxByLabelBesideWait) {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  review["request"]["object"]["metadata"]["labels"]["pipelines.kubeflow.org/pipeline-sdk-type"] =
      "tfx";
  EXPECT_FALSE(admit(review).hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_skips_total", {{"reason", "tfx"}}), 1);
}

TEST_F(AdmissionLogicTest, TfxRuleNeedsExactlyOneMainAndTheEntrypointLast) {
  // Two containers named main: Kubeflow's rule does not apply, the step is considered.
  auto twoMains = tfxReviewAsArgoLaysItOut();
  auto& containers = twoMains["request"]["object"]["spec"]["containers"];
  containers[0]["name"] = "main";
  containers[0]["command"] = containers[1]["command"];
  EXPECT_TRUE(admit(twoMains).hasPatch);
  // The entrypoint not last in the command: not TFX.
  auto notLast = tfxReviewAsArgoLaysItOut();
  for (auto& container : notLast["request"]["object"]["spec"]["containers"]) {
    if (container["name"] == "main") container["command"].push_back("--flag");
  }
  EXPECT_TRUE(admit(notLast).hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_skips_total", {{"reason", "tfx"}}), 0);
}

TEST_F(AdmissionLogicTest, SkipsKfpV2) {
  expectSkipped("skip-kfp-v2-v1.json", "kfp_v2");
}
TEST_F(AdmissionLogicTest, SkipsPodsWithoutArgoTemplate) {
  expectSkipped("skip-no-template-v1.json", "no_argo_template");
}
TEST_F(AdmissionLogicTest, SkipsStalenessZeroFromAnnotation) {
  expectSkipped("skip-staleness-zero-v1.json", "staleness_disabled");
}
TEST_F(AdmissionLogicTest, SkipsOtherResources) {
  expectSkipped("skip-configmap-v1.json", "not_pod_create");
}

TEST_F(AdmissionLogicTest, SkipsUpdatesAndSubresources) {
  auto update = testing::fixtureJson("argo-3.5-v1.json");
  update["request"]["operation"] = "UPDATE";
  EXPECT_FALSE(admit(update).hasPatch);
  auto subresource = testing::fixtureJson("argo-3.5-v1.json");
  subresource["request"]["subResource"] = "status";
  EXPECT_FALSE(admit(subresource).hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_skips_total", {{"reason", "not_pod_create"}}), 2);
  EXPECT_EQ(lookup.lookups(), 0);
}

TEST_F(AdmissionLogicTest, SkipsWhenDefaultStalenessIsZero) {
  config.staleness = core::StalenessPolicy(std::string_view("P0D"), std::nullopt);
  expectSkipped("argo-3.5-v1.json", "staleness_disabled");
}

TEST_F(AdmissionLogicTest, SkipsWhenMaximumStalenessIsZero) {
  config.staleness = core::StalenessPolicy(std::nullopt, std::string_view("PT0S"));
  expectSkipped("argo-3.5-v1.json", "staleness_disabled");
}

TEST_F(AdmissionLogicTest, UnusableTemplateIsAnErrorWithoutPatch) {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  for (auto* containers : {&review["request"]["object"]["spec"]["containers"],
                           &review["request"]["object"]["spec"]["initContainers"]}) {
    for (auto& container : *containers) {
      for (auto& env : container["env"]) {
        if (env["name"] == "ARGO_TEMPLATE") env["value"] = "{\"container\": [1, 2}";
      }
    }
  }
  const auto applied = admit(review);
  EXPECT_FALSE(applied.hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_errors_total", {{"reason", "bad_template"}}), 1);
}

TEST_F(AdmissionLogicTest, ObjectThatIsNotAPodIsAnErrorWithoutPatch) {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  review["request"]["object"] = json::array({1, 2, 3});
  EXPECT_FALSE(admit(review).hasPatch);
  review["request"]["object"] = json{{"metadata", "x"}, {"spec", {}}};
  EXPECT_FALSE(admit(review).hasPatch);
  review["request"]["object"] = json{{"metadata", {{"labels", {{"a", "b"}}}}}};
  EXPECT_FALSE(admit(review).hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_errors_total", {{"reason", "unexpected_object"}}), 3);
}

TEST_F(AdmissionLogicTest, MissTagsThePodV1) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto applied = admit(review);
  expectMissPatch(review, applied);
  // One op per key: the maps other webhooks wrote are not replaced.
  ASSERT_EQ(applied.patch.size(), 3u);
  EXPECT_EQ(applied.patch[0]["path"],
            "/metadata/annotations/pipelines.kubeflow.org~1execution_cache_key");
  EXPECT_EQ(applied.patch[1]["path"], "/metadata/annotations/kcache.kubeflow.org~1admission-stamp");
  EXPECT_EQ(applied.patch[2]["path"], "/metadata/labels/pipelines.kubeflow.org~1cache_id");
  EXPECT_EQ(counterValue("kcache_admission_requests_total", {{"outcome", "miss"}}), 1);
}

TEST_F(AdmissionLogicTest, StampBindsTheGenerateNamePrefixOfAPodWithoutAName) {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  json& metadata = review["request"]["object"]["metadata"];
  const std::string name = metadata["name"];
  metadata.erase("name");
  metadata["generateName"] = "step-";
  review["request"].erase("name");
  const auto applied = admit(review);
  ASSERT_TRUE(applied.hasPatch);
  const std::string stamp =
      applied
          .patchedPod["metadata"]["annotations"][std::string(contract::kAdmissionStampAnnotation)];
  const std::string key = keyOf(review);
  const auto keys = kcache::testing::testStampKeys();
  EXPECT_TRUE(keys->verifies(stamp, {"team-a", "step-", true, key, -1}));
  EXPECT_FALSE(keys->verifies(stamp, {"team-a", "step-", false, key, -1}))
      << "a prefix stamp is never taken for a name-bound one";
  EXPECT_FALSE(keys->verifies(stamp, {"team-a", name, false, key, -1}));
}

TEST_F(AdmissionLogicTest, MissWithoutKeysIsTaggedWithoutAStamp) {
  config.admissionStamps = std::make_shared<core::SharedStampKeys>();  // the secret is not known
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto applied = admit(review);
  ASSERT_TRUE(applied.hasPatch);
  const json& annotations = applied.patchedPod["metadata"]["annotations"];
  EXPECT_TRUE(annotations.contains(std::string(contract::kExecutionCacheKeyAnnotation)));
  EXPECT_FALSE(annotations.contains(std::string(contract::kAdmissionStampAnnotation)));
}

TEST_F(AdmissionLogicTest, HitIsNotStamped) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-a");
  const auto applied = admit(review);
  ASSERT_TRUE(applied.hasPatch);
  EXPECT_FALSE(applied.patchedPod["metadata"]["annotations"].contains(
      std::string(contract::kAdmissionStampAnnotation)))
      << "a cache hit is never recorded, so it needs no stamp";
}

TEST_F(AdmissionLogicTest, MissTagsThePodV1beta1) {
  const auto review = testing::fixtureJson("argo-3.3-v1beta1.json");
  expectMissPatch(review, admit(review));
}

TEST_F(AdmissionLogicTest, MissOnPodWithoutAnnotationsAddsTheMap) {
  const auto review = testing::fixtureJson("no-annotations-v1.json");
  const auto applied = admit(review);
  expectMissPatch(review, applied);
  EXPECT_EQ(applied.patch[0]["path"], "/metadata/annotations");
}

TEST_F(AdmissionLogicTest, HitRewritesThePodV1) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto id = record(review, "team-a");
  const auto applied = admit(review);
  expectHitPod(review, applied, id);
  EXPECT_EQ(lookup.notedHits(), std::vector<int64_t>{id});
  EXPECT_EQ(counterValue("kcache_admission_requests_total", {{"outcome", "hit"}}), 1);
  EXPECT_EQ(counterValue("kcache_compute_seconds_saved_total", {}), 300);
}

TEST_F(AdmissionLogicTest, HitRewritesThePodV1beta1) {
  const auto review = testing::fixtureJson("argo-3.3-v1beta1.json");
  expectHitPod(review, admit(review), record(review, "team-a"));
}

TEST_F(AdmissionLogicTest, HitOnArgo36PodFindsTheTemplateOnInit) {
  const auto review = testing::fixtureJson("argo-3.6-init-only-v1.json");
  expectHitPod(review, admit(review), record(review, "team-a"));
}

TEST_F(AdmissionLogicTest, HitOnPodWithoutAnnotations) {
  const auto review = testing::fixtureJson("no-annotations-v1.json");
  const auto id = record(review, "team-a");
  const auto applied = admit(review);
  expectHitPod(review, applied, id);
  // The key, the outputs and (annotation delivery) report-outputs-completed.
  EXPECT_EQ(applied.patchedPod["metadata"]["annotations"].size(), 3u);
}

TEST_F(AdmissionLogicTest, HitOnPodWithoutLabelsMapStillValid) {
  // Only reachable when cache_enabled arrives some other way; the patch must still apply.
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto id = record(review, "team-a");
  AdmissionDecision decision;
  decision.key = keyOf(review);
  decision.outcome = Hit{id, {kOutputs, "42"}, 300};
  json pod = podOf(review);
  pod["metadata"].erase("labels");
  pod["metadata"].erase("annotations");
  const auto patch = buildPatch(pod, decision, config);
  ASSERT_TRUE(patch.has_value());
  const auto patched = pod.patch(*patch);
  EXPECT_EQ(patched["metadata"]["labels"][std::string(contract::kCacheIdLabel)],
            std::to_string(id));
  EXPECT_EQ(patched["metadata"]["annotations"].size(), 3u);
}

TEST_F(AdmissionLogicTest, HitKeepsNodeRestrictionsWhenConfigured) {
  config.keepNodeRestrictions = true;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-a");
  const auto applied = admit(review);
  EXPECT_EQ(applied.patchedPod["spec"]["affinity"], podOf(review)["spec"]["affinity"]);
  EXPECT_EQ(applied.patchedPod["spec"]["nodeSelector"], podOf(review)["spec"]["nodeSelector"]);
  EXPECT_FALSE(applied.patchedPod["spec"].contains("initContainers"));
}

TEST_F(AdmissionLogicTest, HitUsesCacheImage) {
  auto loaded = loadAdmissionConfig(
      [](std::string_view name) -> std::optional<std::string> {
        if (name == "CACHE_IMAGE") return "registry.local/busybox:1.36";
        return std::nullopt;
      },
      store::CacheScope::kNamespace);
  config = loaded.config;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-a");
  EXPECT_EQ(admit(review).patchedPod["spec"]["containers"][0]["image"],
            "registry.local/busybox:1.36");
}

TEST_F(AdmissionLogicTest, NamespaceScopeIsolatesTenants) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-b");
  expectMissPatch(review, admit(review));
  ASSERT_TRUE(lookup.lastQuery().has_value());
  EXPECT_EQ(lookup.lastQuery()->scope, store::CacheScope::kNamespace);
  EXPECT_EQ(lookup.lastQuery()->namespaceName, "team-a");
}

TEST_F(AdmissionLogicTest, ClusterScopeSharesAcrossNamespaces) {
  config.scope = store::CacheScope::kCluster;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto id = record(review, "team-b");
  expectHitPod(review, admit(review), id);
}

// --- tenancy (issue 13): who may write the cache, whose pods kcache acts on ---

TEST_F(AdmissionLogicTest, ClusterScopeTagsOnlyTheWritersNamespacesButServesHitsToAll) {
  config.scope = store::CacheScope::kCluster;
  config.clusterScopeWriters = core::NameList::parse("kubeflow,team-b");
  const auto review = testing::fixtureJson("argo-3.5-v1.json");  // team-a
  // A miss in a namespace that may not write: let through untouched, not tagged for recording.
  const auto untagged = admit(review);
  EXPECT_FALSE(untagged.hasPatch);
  EXPECT_EQ(untagged.patchedPod, podOf(review));
  EXPECT_EQ(counterValue("kcache_admission_requests_total", {{"outcome", "miss"}}), 1);
  // A writer's own miss is tagged as before.
  config.clusterScopeWriters = core::NameList::parse("team-a");
  expectMissPatch(review, admit(review));
  // Reading the shared cache is what cluster scope is for: a writer's entry is a hit anywhere.
  config.clusterScopeWriters = core::NameList::parse("kubeflow,team-b");
  const auto id = record(review, "team-b");
  expectHitPod(review, admit(review), id);
}

TEST_F(AdmissionLogicTest, NamespaceScopeIgnoresTheClusterWriters) {
  config.clusterScopeWriters = core::NameList::parse("kubeflow");
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  expectMissPatch(review, admit(review));
}

TEST_F(AdmissionLogicTest, TrustedCreatorsOnlyAreActedOn) {
  config.trustedCreators = core::NameList::parse("system:serviceaccount:kubeflow:argo");
  auto review = testing::fixtureJson("argo-3.5-v1.json");  // created by the Argo controller
  expectMissPatch(review, admit(review));
  const auto id = record(review, "team-a");
  expectHitPod(review, admit(review), id);
  const int lookupsSoFar = lookup.lookups();
  // The same pod created by a namespace member by hand, or with no userInfo at all.
  review["request"]["userInfo"]["username"] = "alice@example.com";
  EXPECT_FALSE(admit(review).hasPatch);
  review["request"].erase("userInfo");
  EXPECT_FALSE(admit(review).hasPatch);
  review["request"]["userInfo"] = "not an object";
  EXPECT_FALSE(admit(review).hasPatch);
  EXPECT_EQ(counterValue("kcache_admission_skips_total", {{"reason", "untrusted_creator"}}), 3);
  EXPECT_EQ(lookup.lookups(), lookupsSoFar) << "an untrusted creator's pod never reaches the store";
}

TEST_F(AdmissionLogicTest, NoTrustedCreatorsMeansAnyCreator) {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  review["request"]["userInfo"]["username"] = "alice@example.com";
  expectMissPatch(review, admit(review));
}

TEST_F(AdmissionLogicTest, KeyIsNamespaceBoundInNamespaceScopeAndTemplateOnlyInClusterScope) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const std::string bound = keyFor(review, store::CacheScope::kNamespace, "team-a");
  expectMissPatch(review, admit(review));
  EXPECT_EQ(lookup.lastQuery()->key, bound);
  EXPECT_NE(bound, legacyKeyOf(review));
  config.scope = store::CacheScope::kCluster;
  const auto applied = admit(review);
  EXPECT_EQ(lookup.lastQuery()->key, legacyKeyOf(review));
  EXPECT_EQ(applied.patchedPod["metadata"]["annotations"]
                              [std::string(contract::kExecutionCacheKeyAnnotation)],
            legacyKeyOf(review));
}

// KFP_SECURITY_LEGACY_CACHE_MODE=audit: a namespace-less row written before Kubeflow 2.18.
int64_t addLegacyRow(MemoryLookup& lookup, const json& review, const std::string& namespaceName) {
  store::CacheEntry entry;
  entry.key = legacyKeyOf(review);
  entry.namespaceName = namespaceName;
  entry.executionOutput = core::encodeExecutionOutput({kOutputs, "42"});
  entry.startedAtInSec = kNow - 60;
  entry.runDurationSeconds = 300;
  return lookup.add(entry);
}

TEST_F(AdmissionLogicTest, AuditModeReusesALegacyRowAfterAGenuineMissWithoutTouchingIt) {
  config.legacyCacheMode = store::LegacyCacheMode::kAudit;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const int64_t id = addLegacyRow(lookup, review, "");
  expectHitPod(review, admit(review), id);
  EXPECT_EQ(lookup.legacyLookups(), 1);
  EXPECT_EQ(counterValue("kcache_legacy_cache_reuse_total", {}), 1);
  EXPECT_TRUE(lookup.notedHits().empty()) << "a legacy row is never written to";
}

TEST_F(AdmissionLogicTest, EnforceModeNeverLooksForLegacyRows) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  addLegacyRow(lookup, review, "");
  expectMissPatch(review, admit(review));
  EXPECT_EQ(lookup.legacyLookups(), 0);
  EXPECT_EQ(counterValue("kcache_legacy_cache_reuse_total", {}), 0);
}

TEST_F(AdmissionLogicTest, AuditModePrefersTheNamespacesOwnEntry) {
  config.legacyCacheMode = store::LegacyCacheMode::kAudit;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  addLegacyRow(lookup, review, "");
  const int64_t own = record(review, "team-a");
  expectHitPod(review, admit(review), own);
  EXPECT_EQ(lookup.legacyLookups(), 0);
  EXPECT_EQ(lookup.notedHits(), std::vector<int64_t>{own});
}

TEST_F(AdmissionLogicTest, AuditModeNeverReusesARowThatHasAnOwner) {
  config.legacyCacheMode = store::LegacyCacheMode::kAudit;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  addLegacyRow(lookup, review, "team-b");  // kcache's cluster scope recorded it in team-b
  expectMissPatch(review, admit(review));
  EXPECT_EQ(lookup.legacyLookups(), 1);
  EXPECT_EQ(counterValue("kcache_legacy_cache_reuse_total", {}), 0);
}

TEST_F(AdmissionLogicTest, AuditModeNeverFallsBackAfterAStoreError) {
  config.legacyCacheMode = store::LegacyCacheMode::kAudit;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  addLegacyRow(lookup, review, "");
  testing::FaultyLookup faulty(lookup);
  faulty.failWith("connection refused");
  AdmissionHandler handler(config, faulty, metrics, nullptr, [] { return kNow; });
  const auto answer = handler.handle(review.dump());
  EXPECT_FALSE(testing::applyAnswer(podOf(review), answer.body).hasPatch);
  EXPECT_EQ(faulty.calls(), 1) << "only the namespace-scoped lookup was tried";
  EXPECT_EQ(lookup.legacyLookups(), 0);
  EXPECT_EQ(counterValue("kcache_admission_errors_total", {{"reason", "store_unavailable"}}), 1);
}

TEST_F(AdmissionLogicTest, AuditModeHasNoEffectInClusterScope) {
  config.scope = store::CacheScope::kCluster;
  config.legacyCacheMode = store::LegacyCacheMode::kAudit;
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const int64_t id = addLegacyRow(lookup, review, "");
  expectHitPod(review, admit(review), id);  // an ordinary cluster-scope hit
  EXPECT_EQ(lookup.legacyLookups(), 0);
  EXPECT_EQ(counterValue("kcache_legacy_cache_reuse_total", {}), 0);
}

TEST_F(AdmissionLogicTest, DryRunHitsAreNotCounted) {
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  review["request"]["dryRun"] = true;
  const auto id = record(review, "team-a");
  expectHitPod(review, admit(review), id);
  EXPECT_TRUE(lookup.notedHits().empty());
}

// The seam for a second way of delivering outputs (Argo WorkflowTaskResult, a later issue).
class RecordingDelivery : public OutputDelivery {
 public:
  explicit RecordingDelivery(bool fail) : fail_(fail) {}
  void deliver(const AdmissionRequest& request, const LookupPlan& plan, const Hit& hit) override {
    delivered.push_back(request.name + " " + plan.key + " " + std::to_string(hit.entryId));
    if (fail_) throw std::runtime_error("task result create refused (simulated)");
  }
  std::vector<std::string> delivered;

 private:
  bool fail_;
};

TEST_F(AdmissionLogicTest, OutputDeliveryRunsOnHitsBeforeTheAnswer) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  const auto id = record(review, "team-a");
  RecordingDelivery delivery(false);
  AdmissionHandler handler(config, lookup, metrics, &delivery, [] { return kNow; });
  const auto answer = handler.handle(review.dump());
  expectHitPod(review, testing::applyAnswer(podOf(review), answer.body), id);
  ASSERT_EQ(delivery.delivered.size(), 1u);
  EXPECT_EQ(delivery.delivered[0], std::string(review["request"]["name"]) + " " + keyOf(review) +
                                       " " + std::to_string(id));
}

TEST_F(AdmissionLogicTest, FailedOutputDeliveryRunsTheStepInstead) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  record(review, "team-a");
  RecordingDelivery delivery(true);
  AdmissionHandler handler(config, lookup, metrics, &delivery, [] { return kNow; });
  const auto answer = handler.handle(review.dump());
  expectMissPatch(review, testing::applyAnswer(podOf(review), answer.body));
  EXPECT_EQ(delivery.delivered.size(), 1u);
  EXPECT_TRUE(lookup.notedHits().empty());
}

TEST_F(AdmissionLogicTest, AHitTooLargeForThePodsAnnotationsRunsTheStepAndIsNotAHit) {
  // Argo 3.5 reads the outputs from the pod's annotation; 300 KiB of them would take the pod over
  // Kubernetes' 256 KiB of annotations, and the API server would refuse the rewritten pod.
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  store::CacheEntry entry;
  entry.key = keyOf(review);
  entry.namespaceName = "team-a";
  entry.executionOutput = core::encodeExecutionOutput(
      {R"({"parameters":[{"name":"big","value":")" + std::string(300 * 1024, 'x') + R"("}]})",
       "42"});
  entry.startedAtInSec = kNow - 10;
  entry.runDurationSeconds = 300;
  lookup.add(entry);
  RecordingDelivery delivery(false);
  AdmissionHandler handler(config, lookup, metrics, &delivery, [] { return kNow; });
  const auto answer = handler.handle(review.dump());
  expectMissPatch(review, testing::applyAnswer(podOf(review), answer.body));
  EXPECT_TRUE(delivery.delivered.empty()) << "nothing is delivered for a step that runs";
  EXPECT_TRUE(lookup.notedHits().empty());
  EXPECT_EQ(counterValue("kcache_admission_requests_total", {{"outcome", "hit"}}), 0);
  EXPECT_EQ(counterValue("kcache_admission_requests_total", {{"outcome", "miss"}}), 1);
  EXPECT_EQ(counterValue("kcache_compute_seconds_saved_total", {}), 0);
}

TEST_F(AdmissionLogicTest, UnreadableCachedOutputRunsTheStepAgain) {
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  store::CacheEntry entry;
  entry.key = keyOf(review);
  entry.namespaceName = "team-a";
  entry.executionOutput = "not json";
  entry.startedAtInSec = kNow - 10;
  lookup.add(entry);
  expectMissPatch(review, admit(review));
  EXPECT_EQ(counterValue("kcache_cache_entries_unreadable_total", {}), 1);
}

TEST_F(AdmissionLogicTest, EntryWithoutRecordedOutputsRunsTheStepAgain) {
  // What Kubeflow's watcher stores for a pod without the outputs annotation.
  const auto review = testing::fixtureJson("argo-3.5-v1.json");
  store::CacheEntry entry;
  entry.key = keyOf(review);
  entry.namespaceName = "team-a";
  entry.executionOutput = core::encodeExecutionOutput({"", ""});
  entry.startedAtInSec = kNow - 10;
  lookup.add(entry);
  expectMissPatch(review, admit(review));
  EXPECT_EQ(counterValue("kcache_cache_entries_unreadable_total", {}), 1);
  EXPECT_TRUE(lookup.notedHits().empty());
}

// Staleness combinations of docs/admission.md, "Staleness" (annotation A, default D, maximum M,
// recorded staleness, entry age) as kcache resolves them (docs/admission.md, "Staleness").
struct StalenessCase {
  const char* name;
  std::optional<std::string> annotation, defaultStaleness, maximumStaleness;
  int64_t entryMaxStaleness;
  int64_t ageDays;
  bool hit;
};

void PrintTo(const StalenessCase& value, std::ostream* out) {
  *out << value.name;
}

class StalenessTest : public AdmissionLogicTest,
                      public ::testing::WithParamInterface<StalenessCase> {};

TEST_P(StalenessTest, ResolvesLikeTheTable) {
  const auto& param = GetParam();
  auto review = testing::fixtureJson("argo-3.5-v1.json");
  if (param.annotation) {
    review["request"]["object"]["metadata"]["annotations"]
          [std::string(contract::kMaxCacheStalenessAnnotation)] = *param.annotation;
  }
  auto asView = [](const std::optional<std::string>& value) {
    return value ? std::optional<std::string_view>(*value) : std::nullopt;
  };
  config.staleness =
      core::StalenessPolicy(asView(param.defaultStaleness), asView(param.maximumStaleness));
  const auto id = record(review, "team-a", param.ageDays * 86400, param.entryMaxStaleness);
  const auto applied = admit(review);
  if (param.hit) {
    expectHitPod(review, applied, id);
  } else {
    // The stamp binds the staleness the watcher will record: the annotation capped by the maximum.
    expectMissPatch(review, applied, config.staleness.forRecording(asView(param.annotation)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, StalenessTest,
    ::testing::Values(
        StalenessCase{"nothing_set", {}, {}, {}, -1, 400, true},
        StalenessCase{"annotation_fresh", "P30D", {}, {}, -1, 10, true},
        StalenessCase{"annotation_stale", "P30D", {}, {}, -1, 31, false},
        StalenessCase{"default_stale", {}, "P7D", {}, -1, 8, false},
        StalenessCase{"annotation_wins_over_default", "P30D", "P7D", {}, -1, 8, true},
        StalenessCase{"maximum_caps_annotation_fresh", "P30D", {}, "P7D", -1, 6, true},
        StalenessCase{"maximum_caps_annotation_stale", "P30D", {}, "P7D", -1, 8, false},
        StalenessCase{"maximum_caps_unlimited", {}, {}, "P7D", -1, 8, false},
        StalenessCase{"invalid_annotation_uses_default", "30d", "P7D", {}, -1, 3, true},
        StalenessCase{"negative_annotation_uses_default", "-P1D", {}, {}, -1, 100, true},
        StalenessCase{"entry_recorded_with_zero", {}, {}, {}, 0, 1, false},
        StalenessCase{"entry_own_limit_applies", "P1D", {}, {}, 86400, 2, false},
        StalenessCase{"entry_own_limit_fresh", "P3D", {}, {}, 3 * 86400, 2, true}),
    [](const ::testing::TestParamInfo<StalenessCase>& info) { return info.param.name; });

TEST(AdmissionConfigTest, ReadsKubeflowEnvironment) {
  std::map<std::string, std::string> env = {{"DEFAULT_CACHE_STALENESS", "P7D"},
                                            {"MAXIMUM_CACHE_STALENESS", "P30D"},
                                            {"CACHE_NODE_RESTRICTIONS", "True"},
                                            {"CACHE_IMAGE", ""}};
  auto loaded = loadAdmissionConfig(
      [&](std::string_view name) -> std::optional<std::string> {
        const auto it = env.find(std::string(name));
        return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
      },
      store::CacheScope::kCluster);
  EXPECT_EQ(loaded.config.scope, store::CacheScope::kCluster);
  EXPECT_EQ(loaded.config.staleness.defaultSeconds(), 7 * 86400);
  EXPECT_EQ(loaded.config.staleness.maximumSeconds(), 30 * 86400);
  EXPECT_TRUE(loaded.config.keepNodeRestrictions);
  EXPECT_EQ(loaded.config.cacheImage, contract::kDefaultCacheImage);
  EXPECT_EQ(loaded.warnings.size(), 1u) << "the empty CACHE_IMAGE is reported";
}

TEST(AdmissionConfigTest, InvalidValuesAreReportedNotFatal) {
  auto loaded = loadAdmissionConfig(
      [](std::string_view name) -> std::optional<std::string> {
        if (name == "CACHE_NODE_RESTRICTIONS") return "yes";
        if (name == "DEFAULT_CACHE_STALENESS") return "7 days";
        return std::nullopt;
      },
      store::CacheScope::kNamespace);
  EXPECT_FALSE(loaded.config.keepNodeRestrictions);
  EXPECT_FALSE(loaded.config.staleness.defaultSeconds().has_value());
  EXPECT_EQ(loaded.warnings.size(), 2u);
}

TEST(AdmissionConfigTest, GoBoolSpellings) {
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"}) EXPECT_EQ(parseGoBool(yes), true);
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"})
    EXPECT_EQ(parseGoBool(no), false);
  for (const char* bad : {"", "yes", "tRUE", "2"}) EXPECT_FALSE(parseGoBool(bad).has_value());
}

TEST(PatchTest, PointerTokensAreEscaped) {
  EXPECT_EQ(escapePointerToken("a/b~c"), "a~1b~0c");
  EXPECT_EQ(escapePointerToken("pipelines.kubeflow.org/cache_id"),
            "pipelines.kubeflow.org~1cache_id");
}

}  // namespace
}  // namespace kcache::webhook
