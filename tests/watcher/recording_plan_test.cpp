#include <gtest/gtest.h>

#include "core/execution_output.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/support/test_stamp_keys.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/recording_plan.h"

namespace kcache::watcher {
namespace {

using fakekube::makeTaggedPod;
using fakekube::markSucceeded;
using testing::keyFor;

nlohmann::json completedPod() {
  auto pod = makeTaggedPod("team-a", "step-1", keyFor(7));
  pod["metadata"]["uid"] = "uid-1";
  pod["metadata"]["labels"]["pipelines.kubeflow.org/metadata_execution_id"] = "42";
  markSucceeded(pod, R"({"parameters":[{"name":"x","value":"<1>"}]})", "2026-03-01T10:00:00Z",
                "2026-03-01T10:02:05Z");
  return pod;
}

TEST(RecordingPlan, RecordsWhatKubeflowRecordsPlusNamespacePodAndDuration) {
  const core::StalenessPolicy policy;
  const auto plan = planRecording(completedPod(), policy, 1'700'000'000);
  ASSERT_TRUE(plan);
  const store::NewEntry& entry = plan->entry;
  EXPECT_EQ(entry.key, fakekube::taggedPodKey("team-a", keyFor(7)));
  EXPECT_EQ(entry.namespaceName, "team-a");
  EXPECT_EQ(entry.podName, "step-1");
  EXPECT_EQ(
      entry.executionTemplate,
      R"({"name":"step-1","container":{"image":"python:3.11","command":["python"],"args":[")" +
          keyFor(7) + R"("]}})");
  EXPECT_EQ(
      entry.executionOutput,
      R"({"pipelines.kubeflow.org/metadata_execution_id":"42","workflows.argoproj.io/outputs":"{\"parameters\":[{\"name\":\"x\",\"value\":\"\u003c1\u003e\"}]}"})");
  EXPECT_EQ(entry.runDurationSeconds, 125);
  EXPECT_EQ(entry.recordedAtInSec, 1'700'000'000);
  EXPECT_EQ(entry.maxCacheStaleness, -1);
  EXPECT_EQ(plan->pod.uid, "uid-1");
}

TEST(RecordingPlan, StalenessAnnotationIsCappedByTheMaximum) {
  auto pod = completedPod();
  pod["metadata"]["annotations"]["pipelines.kubeflow.org/max_cache_staleness"] = "P30D";
  EXPECT_EQ(
      planRecording(pod, core::StalenessPolicy(std::nullopt, "P1D"), 0)->entry.maxCacheStaleness,
      86400);
  EXPECT_EQ(planRecording(pod, core::StalenessPolicy(), 0)->entry.maxCacheStaleness, 30 * 86400);
  // The default is ignored when recording, as in Kubeflow.
  pod["metadata"]["annotations"].erase("pipelines.kubeflow.org/max_cache_staleness");
  EXPECT_EQ(
      planRecording(pod, core::StalenessPolicy("P2D", std::nullopt), 0)->entry.maxCacheStaleness,
      -1);
}

TEST(RecordingPlan, MissingOutputsAndExecutionIdAreEmptyStrings) {
  auto pod = completedPod();
  pod["metadata"]["annotations"].erase("workflows.argoproj.io/outputs");
  pod["metadata"]["labels"].erase("pipelines.kubeflow.org/metadata_execution_id");
  EXPECT_EQ(
      planRecording(pod, {}, 0)->entry.executionOutput,
      R"({"pipelines.kubeflow.org/metadata_execution_id":"","workflows.argoproj.io/outputs":""})");
}

TEST(RecordingPlan, SkipsPodsThatAreNotReady) {
  const core::StalenessPolicy policy;
  auto running = makeTaggedPod("n", "p", keyFor(1));
  EXPECT_EQ(planRecording(running, policy, 0).error(), SkipReason::kNotSucceeded);

  auto failed = completedPod();
  failed["status"]["phase"] = "Failed";
  EXPECT_EQ(planRecording(failed, policy, 0).error(), SkipReason::kNotSucceeded);

  auto mainFailed = completedPod();
  mainFailed["status"]["containerStatuses"][1]["state"]["terminated"]["exitCode"] = 2;
  EXPECT_EQ(planRecording(mainFailed, policy, 0).error(), SkipReason::kNotSucceeded);

  auto mainNotTerminated = completedPod();
  mainNotTerminated["status"]["containerStatuses"][1]["state"] = R"({"running":{}})"_json;
  EXPECT_EQ(planRecording(mainNotTerminated, policy, 0).error(), SkipReason::kNotSucceeded);

  auto noStatuses = completedPod();
  noStatuses["status"].erase("containerStatuses");
  EXPECT_EQ(planRecording(noStatuses, policy, 0).error(), SkipReason::kNotSucceeded);

  auto replay = completedPod();
  replay["metadata"]["labels"]["pipelines.kubeflow.org/reused_from_cache"] = "true";
  EXPECT_EQ(planRecording(replay, policy, 0).error(), SkipReason::kReplay);

  auto hit = completedPod();
  hit["metadata"]["labels"]["pipelines.kubeflow.org/cache_id"] = "12";
  EXPECT_EQ(planRecording(hit, policy, 0).error(), SkipReason::kAlreadyLabelled);

  auto noKey = completedPod();
  noKey["metadata"]["annotations"].erase("pipelines.kubeflow.org/execution_cache_key");
  EXPECT_EQ(planRecording(noKey, policy, 0).error(), SkipReason::kNoKey);

  auto badKey = completedPod();
  badKey["metadata"]["annotations"]["pipelines.kubeflow.org/execution_cache_key"] = "xyz";
  EXPECT_EQ(planRecording(badKey, policy, 0).error(), SkipReason::kInvalidKey);

  EXPECT_EQ(planRecording(nlohmann::json::object(), policy, 0).error(), SkipReason::kNotAPod);
  EXPECT_EQ(planRecording(nlohmann::json::array(), policy, 0).error(), SkipReason::kNotAPod);
  EXPECT_EQ(planRecording(R"({"metadata":{"name":1,"namespace":"n"}})"_json, policy, 0).error(),
            SkipReason::kNotAPod);
}

// Labels and annotations are writable by anyone who may edit pods in the namespace: the key is
// recomputed from the pod's own template and namespace, and every other claim is refused.
const std::string kKeyAnnotation = "pipelines.kubeflow.org/execution_cache_key";

void setMainTemplate(nlohmann::json& pod, const std::string& argoTemplate) {
  for (auto& container : pod["spec"]["containers"]) {
    for (auto& env : container["env"]) {
      if (env["name"] == "ARGO_TEMPLATE") env["value"] = argoTemplate;
    }
  }
}

TEST(RecordingPlanRefusals, AForgedKeyOfAnotherStepIsRefused) {
  auto pod = completedPod();
  // A victim's key (another step's template) on a pod that ran something else.
  pod["metadata"]["annotations"][kKeyAnnotation] = fakekube::taggedPodKey("team-a", keyFor(8));
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kKeyMismatch);
  EXPECT_EQ(refusalLabel(SkipReason::kKeyMismatch), "key_mismatch");
}

TEST(RecordingPlanRefusals, AnotherNamespacesKeyIsRefused) {
  auto pod = completedPod();  // team-a
  pod["metadata"]["annotations"][kKeyAnnotation] = fakekube::taggedPodKey("team-b", keyFor(7));
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kKeyMismatch);
}

TEST(RecordingPlanRefusals, TheKeyOfTheOtherScopeIsRefused) {
  auto pod = completedPod();
  // The template-only key (cluster scope) where the namespace-bound key is in force, and back.
  pod["metadata"]["annotations"][kKeyAnnotation] =
      fakekube::taggedPodKey("team-a", keyFor(7), core::KeyBinding::kTemplateOnly);
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kKeyMismatch);
  EXPECT_TRUE(planRecording(pod, RecordingRules({}, store::CacheScope::kCluster), 0));
  EXPECT_EQ(
      planRecording(completedPod(), RecordingRules({}, store::CacheScope::kCluster), 0).error(),
      SkipReason::kKeyMismatch);
}

// tenancy (issue 13): who may write the shared cache.
TEST(RecordingPlanRefusals, ClusterScopeRecordsOnlyTheWritersNamespaces) {
  auto pod = completedPod();  // team-a
  pod["metadata"]["annotations"][kKeyAnnotation] =
      fakekube::taggedPodKey("team-a", keyFor(7), core::KeyBinding::kTemplateOnly);
  RecordingRules rules({}, store::CacheScope::kCluster);
  rules.clusterScopeWriters = core::NameList::parse("kubeflow, team-b");
  EXPECT_EQ(planRecording(pod, rules, 0).error(), SkipReason::kNamespaceNotWriter);
  EXPECT_EQ(refusalLabel(SkipReason::kNamespaceNotWriter), "namespace_not_writer");
  rules.clusterScopeWriters = core::NameList::parse("kubeflow,team-a");
  EXPECT_TRUE(planRecording(pod, rules, 0));
  rules.clusterScopeWriters = core::NameList::parse("*");
  EXPECT_TRUE(planRecording(pod, rules, 0));
  // Namespace scope ignores the list: an entry there is only reused by its own namespace.
  RecordingRules namespaced;
  namespaced.clusterScopeWriters = core::NameList::parse("kubeflow");
  EXPECT_TRUE(planRecording(completedPod(), namespaced, 0));
}

TEST(RecordingPlanRefusals, AVictimsTemplateAndKeyFromAnotherNamespaceAreRefused) {
  // The attacker copies team-b's ARGO_TEMPLATE and key into a pod of team-a: the key is bound to
  // team-b, so team-a's pod cannot carry it. (In its own namespace the copied template gives the
  // attacker's own key: recording it there only caches a step the attacker could run anyway.)
  auto pod = completedPod();
  const std::string victimTemplate =
      R"({"name":"v","container":{"image":"python:3.11","command":["python"],"args":["victim"]}})";
  setMainTemplate(pod, victimTemplate);
  pod["metadata"]["annotations"][kKeyAnnotation] =
      core::computeExecutionKey(victimTemplate, core::KeyBinding::kNamespaceBound, "team-b")
          .value()
          .hex();
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kKeyMismatch);
}

TEST(RecordingPlanRefusals, NoTemplateOrAnUnusableOneIsRefused) {
  auto noTemplate = completedPod();
  setMainTemplate(noTemplate, "");
  for (auto& container : noTemplate["spec"]["containers"]) container.erase("env");
  EXPECT_EQ(planRecording(noTemplate, {}, 0).error(), SkipReason::kNoTemplate);
  auto broken = completedPod();
  setMainTemplate(broken, R"({"container": [1, 2}})");
  EXPECT_EQ(planRecording(broken, {}, 0).error(), SkipReason::kBadTemplate);
  EXPECT_EQ(refusalLabel(SkipReason::kNoTemplate), "template_missing");
  EXPECT_EQ(refusalLabel(SkipReason::kBadTemplate), "template_invalid");
  EXPECT_FALSE(refusalLabel(SkipReason::kNotSucceeded).has_value());
}

TEST(RecordingPlanRefusals, AnOffloadedTemplateIsCheckedAgainstItsConfigMap) {
  auto pod = completedPod();
  const std::string argoTemplate = pod["spec"]["containers"][1]["env"][0]["value"];
  setMainTemplate(pod, "offloaded");
  pod["metadata"]["ownerReferences"] = nlohmann::json::array(
      {{{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Workflow"}, {"uid", "wf-uid"}}});
  // Off by default: refused without reading anything.
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kTemplateOffloaded);
  EXPECT_EQ(refusalLabel(SkipReason::kTemplateOffloaded), "template_offloaded");
  RecordingRules reading;
  reading.readOffloadedTemplates = true;
  auto plan = planRecording(pod, reading, 0);
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->templateOffloaded);
  EXPECT_EQ(plan->workflowUid, "wf-uid");
  const auto verified = verifyOffloadedKey(*plan, argoTemplate, store::CacheScope::kNamespace);
  ASSERT_TRUE(verified);
  EXPECT_FALSE(verified->templateOffloaded);
  EXPECT_EQ(verified->entry.executionTemplate, argoTemplate);  // the real template is kept
  EXPECT_EQ(
      verifyOffloadedKey(*plan, R"({"container":{"image":"evil"}})", store::CacheScope::kNamespace)
          .error(),
      SkipReason::kKeyMismatch);
  EXPECT_EQ(verifyOffloadedKey(*plan, "not json", store::CacheScope::kNamespace).error(),
            SkipReason::kBadTemplate);
}

// The rules of the watcher in cache-server: the admission stamp is required.
RecordingRules stampedRules(core::StalenessPolicy staleness = {},
                            store::CacheScope scope = store::CacheScope::kNamespace) {
  RecordingRules rules(std::move(staleness), scope);
  rules.admissionStamps = kcache::testing::testStampKeys();
  return rules;
}

TEST(RecordingPlanAdmission, AStampedPodIsRecorded) {
  const auto plan = planRecording(completedPod(), stampedRules(), 0);
  ASSERT_TRUE(plan) << toString(plan.error());
  EXPECT_EQ(plan->entry.podName, "step-1");
}

TEST(RecordingPlanAdmission, APodNeverAdmittedIsRefused) {
  // Labelled cache_id "" by hand without cache_enabled: kcache's webhook never saw it.
  auto pod = completedPod();
  pod["metadata"]["labels"].erase("pipelines.kubeflow.org/cache_enabled");
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kNotCacheEnabled);
  pod["metadata"]["labels"]["pipelines.kubeflow.org/cache_enabled"] = "false";
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kNotCacheEnabled);
  EXPECT_EQ(refusalLabel(SkipReason::kNotCacheEnabled), "not_cache_enabled");
}

TEST(RecordingPlanAdmission, APodAdmittedWhileTheWebhookWasDownIsRefused) {
  auto pod = completedPod();
  pod["metadata"]["annotations"].erase("kcache.kubeflow.org/admission-stamp");
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kNoStamp);
  EXPECT_EQ(refusalLabel(SkipReason::kNoStamp), "stamp_missing");
  // cachectl record (no key ring) asks for no stamp.
  EXPECT_TRUE(planRecording(pod, {}, 0));
}

TEST(RecordingPlanAdmission, AStampUnderAnotherSecretOrMalformedIsRefused) {
  auto pod = completedPod();
  const auto otherKeys = core::StampKeyRing::fromSecrets(std::string(32, 'z')).value();
  const std::string key = pod["metadata"]["annotations"][kKeyAnnotation];
  for (const std::string& forged : {otherKeys.sign({"team-a", "step-1", false, key, -1}),
                                    std::string("v1:"), std::string("anything")}) {
    pod["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"] = forged;
    EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kBadStamp) << forged;
  }
  EXPECT_EQ(refusalLabel(SkipReason::kBadStamp), "stamp_invalid");
}

TEST(RecordingPlanAdmission, AStalenessPatchedAfterAdmissionIsRefused) {
  // P1000Y on a pod admitted without the annotation would keep a forged entry forever.
  auto pod = completedPod();
  pod["metadata"]["annotations"]["pipelines.kubeflow.org/max_cache_staleness"] = "P1000Y";
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kBadStamp);
  // Admitted with it, the stamp binds it.
  fakekube::stampAsAdmitted(pod, core::StalenessPolicy().forRecording("P1000Y"));
  EXPECT_TRUE(planRecording(pod, stampedRules(), 0));
  // The watcher's maximum is part of what is bound: the webhook stamps with the same policy.
  EXPECT_EQ(planRecording(pod, stampedRules(core::StalenessPolicy(std::nullopt, "P7D")), 0).error(),
            SkipReason::kBadStamp);
}

TEST(RecordingPlanAdmission, AStampCopiedToAnotherPodIsRefused) {
  // Another step's pod in the same namespace, stamped properly, lends its stamp: it binds that
  // pod's name and key, not this one's.
  auto lender = makeTaggedPod("team-a", "step-2", keyFor(8));
  auto pod = completedPod();
  pod["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"] =
      lender["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"];
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kBadStamp);
  // The same name and key in another namespace (namespace scope binds it, and so does the stamp).
  auto elsewhere = makeTaggedPod("team-b", "step-1", keyFor(7));
  markSucceeded(elsewhere, "{}");
  elsewhere["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"] =
      pod["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"];
  EXPECT_EQ(planRecording(elsewhere, stampedRules(), 0).error(), SkipReason::kBadStamp);
}

TEST(RecordingPlanAdmission, AKeyPatchedAfterAdmissionIsRefusedEvenWhenItMatchesTheTemplate) {
  // Cluster scope: the annotation is switched to the template-only key, which the template does
  // give, but the stamp bound the namespace-bound one.
  auto pod = completedPod();
  pod["metadata"]["annotations"][kKeyAnnotation] =
      fakekube::taggedPodKey("team-a", keyFor(7), core::KeyBinding::kTemplateOnly);
  EXPECT_EQ(planRecording(pod, stampedRules({}, store::CacheScope::kCluster), 0).error(),
            SkipReason::kBadStamp);
}

TEST(RecordingPlanAdmission, AGenerateNameStampBindsThePrefixOfTheName) {
  auto pod = completedPod();
  const std::string key = pod["metadata"]["annotations"][kKeyAnnotation];
  const auto keys = kcache::testing::testStampKeys();
  pod["metadata"]["name"] = "step-x7k2p";
  pod["metadata"]["generateName"] = "step-";
  pod["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"] =
      keys->sign({"team-a", "step-", true, key, -1});
  EXPECT_TRUE(planRecording(pod, stampedRules(), 0));
  // A name outside the prefix, or a prefix stamp presented as a name stamp, is refused.
  pod["metadata"]["name"] = "other-x7k2p";
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kBadStamp);
  pod["metadata"]["name"] = "step-";
  pod["metadata"].erase("generateName");
  EXPECT_EQ(planRecording(pod, stampedRules(), 0).error(), SkipReason::kBadStamp);
}

TEST(RecordingPlanAdmission, RotationAcceptsThePreviousSecret) {
  auto pod = completedPod();
  const std::string key = pod["metadata"]["annotations"][kKeyAnnotation];
  const std::string newSecret(40, 'n');
  pod["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"] =
      kcache::testing::testStampKeys()->sign({"team-a", "step-1", false, key, -1});
  RecordingRules rules;
  rules.admissionStamps = std::make_shared<const core::StampKeyRing>(
      core::StampKeyRing::fromSecrets(newSecret, kcache::testing::testStampSecret()).value());
  EXPECT_TRUE(planRecording(pod, rules, 0)) << "signed before the rotation";
  rules.admissionStamps = std::make_shared<const core::StampKeyRing>(
      core::StampKeyRing::fromSecrets(newSecret).value());
  EXPECT_EQ(planRecording(pod, rules, 0).error(), SkipReason::kBadStamp)
      << "once the previous secret is dropped";
}

TEST(RecordingPlan, ArgosCompletedLabelIsNotNeeded) {
  // podGC may delete a pod before Argo labels it completed=true (docs/argo-lines.md, "The
  // `completed` label").
  auto pod = completedPod();
  pod["metadata"]["labels"].erase("workflows.argoproj.io/completed");
  ASSERT_TRUE(planRecording(pod, {}, 0));
  pod["metadata"]["labels"]["workflows.argoproj.io/completed"] = "false";
  EXPECT_TRUE(planRecording(pod, {}, 0));
}

TEST(RecordingPlan, AnnotationOfNewerExecutorsCountsOnlyWhenReportedComplete) {
  auto pod = completedPod();
  EXPECT_EQ(annotationOutputs(pod), R"({"parameters":[{"name":"x","value":"<1>"}]})");
  pod["metadata"]["annotations"]["workflows.argoproj.io/report-outputs-completed"] = "false";
  EXPECT_FALSE(annotationOutputs(pod));
  EXPECT_EQ(
      core::decodeExecutionOutput(planRecording(pod, {}, 0)->entry.executionOutput)->argoOutputs,
      "");
  pod["metadata"]["annotations"]["workflows.argoproj.io/report-outputs-completed"] = "true";
  EXPECT_TRUE(annotationOutputs(pod));
  pod["metadata"]["annotations"].erase("workflows.argoproj.io/outputs");
  EXPECT_FALSE(annotationOutputs(pod));
}

TEST(RecordingPlan, PodSideCarriesNodeIdAndExecutionIdWithoutOutputs) {
  auto pod = completedPod();
  EXPECT_EQ(nodeIdOf(pod), "");
  pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"] = "wf-1-2345";
  auto plan = planPodRecording(pod, {}, 5);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->nodeId, "wf-1-2345");
  EXPECT_EQ(plan->metadataExecutionId, "42");
  EXPECT_EQ(plan->entry.executionOutput, "");
  setOutputs(*plan, "{}");
  EXPECT_EQ(
      plan->entry.executionOutput,
      R"({"pipelines.kubeflow.org/metadata_execution_id":"42","workflows.argoproj.io/outputs":"{}"})");
  EXPECT_EQ(mainExitCode(pod), 0);
}

TEST(RecordingPlan, OddShapesNeverThrow) {
  auto pod = completedPod();
  pod["metadata"]["labels"] = "not a map";  // read as no labels at all
  EXPECT_EQ(planRecording(pod, {}, 0)->metadataExecutionId, "");
  pod["metadata"]["annotations"] = 7;
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kNoKey);
  pod = completedPod();
  pod["status"]["containerStatuses"] = 5;
  EXPECT_EQ(runDurationSeconds(pod), 0);
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kNotSucceeded);  // main's exit unknown
  pod["status"]["containerStatuses"] =
      R"([{"name":"main","state":{"terminated":{"exitCode":0,"startedAt":"x","finishedAt":3}}}])"_json;
  EXPECT_EQ(planRecording(pod, {}, 0)->entry.runDurationSeconds, 0);
  pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = "0";
  EXPECT_EQ(planRecording(pod, {}, 0).error(), SkipReason::kNotSucceeded);
}

TEST(RecordingPlan, RunDurationPrefersMainAndFallsBackToAnyTerminatedContainer) {
  auto pod = completedPod();
  pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] =
      "2026-03-01T11:00:00Z";
  EXPECT_EQ(runDurationSeconds(pod), 125);  // main, not wait
  pod["status"]["containerStatuses"].erase(1);
  EXPECT_EQ(runDurationSeconds(pod), 3600);
}

TEST(RecordingPlan, ParsesRfc3339) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339("2026-03-01T10:00:00Z"), 1772359200);
  EXPECT_EQ(parseRfc3339("2026-03-01T10:00:00.123456Z"), 1772359200);
  EXPECT_EQ(parseRfc3339("2026-03-01T12:00:00+02:00"), 1772359200);
  EXPECT_EQ(parseRfc3339("2026-03-01T09:30:00-00:30"), 1772359200);
  for (const char* bad :
       {"", "2026-03-01", "2026-03-01T10:00:00", "2026-13-01T10:00:00Z", "2026-03-01T10:00:00.Z",
        "2026-03-01T10:00:00Zjunk", "abcd-ef-ghTij:kl:mnZ"}) {
    EXPECT_FALSE(parseRfc3339(bad).has_value()) << bad;
  }
}

TEST(RecordingPlan, PatchSetsOnlyCacheIdWithTheUidAsPrecondition) {
  EXPECT_EQ(cacheIdPatch(PodIdentity{"n", "p", "u-1"}, 17),
            R"({"metadata":{"labels":{"pipelines.kubeflow.org/cache_id":"17"},"uid":"u-1"}})"_json);
  EXPECT_EQ(cacheIdPatch(PodIdentity{"n", "p", ""}, 3),
            R"({"metadata":{"labels":{"pipelines.kubeflow.org/cache_id":"3"}}})"_json);
}

}  // namespace
}  // namespace kcache::watcher
