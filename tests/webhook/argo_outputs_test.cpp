// Argo outputs delivery as pure logic (docs/argo-lines.md, "The hit, step by step"): the task
// result kcache creates for a hit, built from each Argo line's pod fixture; the --argo-outputs
// choice per layout; offloaded templates in the plan; the annotations a hit sets in each delivery.
#include <gtest/gtest.h>

#include "core/execution_key.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "tests/webhook/argo_test_support.h"
#include "webhook/config.h"
#include "webhook/decision.h"
#include "webhook/patch.h"
#include "webhook/task_result.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
namespace contract = core::contract;

constexpr const char* kWorkflow = testing::kFixtureWorkflow;
constexpr const char* kWorkflowUid = testing::kFixtureWorkflowUid;
constexpr const char* kNodeId = testing::kFixtureNodeId;

json readJson(const std::string& relativePath) {
  return testing::readTestData(relativePath);
}

json podFixture(const std::string& name) {
  return testing::argoPodFixture(name);
}

AdmissionRequest requestFor(json pod) {
  AdmissionRequest request;
  request.apiVersion = "admission.k8s.io/v1";
  request.kind = "AdmissionReview";
  request.uid = "705ab4f5-6393-11e8-b7cc-42010a800099";
  request.operation = "CREATE";
  request.namespaceName = pod["metadata"]["namespace"];
  request.name = pod["metadata"]["name"];
  request.resourceVersion = "v1";
  request.resourceName = "pods";
  request.object = std::move(pod);
  return request;
}

const std::vector<std::string> kArgoLines = {"argo-3.3",          "argo-3.5",
                                             "argo-3.6",          "argo-4.1-legacy",
                                             "argo-4.1-initless", "argo-3.6-offloaded"};

TEST(TaskResultTarget, ReadFromEveryArgoLinesPod) {
  for (const auto& line : kArgoLines) {
    const auto target = taskResultTarget(podFixture(line), "team-a");
    EXPECT_EQ(target.namespaceName, "team-a") << line;
    EXPECT_EQ(target.nodeId, kNodeId) << line;
    EXPECT_EQ(target.workflowName, kWorkflow) << line;
    EXPECT_EQ(target.workflowUid, kWorkflowUid) << line;
    EXPECT_FALSE(target.instanceId.has_value()) << line;
  }
}

TEST(TaskResultTarget, NodeIdFallsBackToTheEnvAndInstanceIdIsKept) {
  json pod = podFixture("argo-3.6");
  pod["metadata"]["annotations"].erase(std::string(contract::kArgoNodeIdAnnotation));
  pod["metadata"]["labels"][std::string(contract::kArgoControllerInstanceIdLabel)] = "kfp";
  const auto target = taskResultTarget(pod, "team-a");
  EXPECT_EQ(target.nodeId, kNodeId);
  EXPECT_EQ(target.instanceId, "kfp");
}

TEST(TaskResultTarget, OwnerOfAnotherKindOrNameGivesNoUid) {
  json pod = podFixture("argo-3.6");
  pod["metadata"]["ownerReferences"][0]["name"] = "another-workflow";
  EXPECT_EQ(taskResultTarget(pod, "team-a").workflowUid, "");
  pod["metadata"].erase("ownerReferences");
  EXPECT_EQ(taskResultTarget(pod, "team-a").workflowUid, "");
}

TEST(TaskResultTarget, WithoutWorkflowOrNodeIdThereIsNoTarget) {
  json noWorkflow = podFixture("argo-3.6");
  noWorkflow["metadata"]["labels"].erase(std::string(contract::kArgoWorkflowLabel));
  EXPECT_THROW(taskResultTarget(noWorkflow, "team-a"), DeliveryError);

  json noNode = podFixture("argo-3.6");
  noNode["metadata"]["annotations"].erase(std::string(contract::kArgoNodeIdAnnotation));
  for (auto* list : {&noNode["spec"]["containers"], &noNode["spec"]["initContainers"]}) {
    for (auto& container : *list) {
      auto& env = container["env"];
      env.erase(std::remove_if(env.begin(), env.end(),
                               [](const json& v) { return v["name"] == "ARGO_NODE_ID"; }),
                env.end());
    }
  }
  EXPECT_THROW(taskResultTarget(noNode, "team-a"), DeliveryError);
  EXPECT_THROW(taskResultTarget(json(1), "team-a"), DeliveryError);
}

TEST(ReplayedOutputs, VerbatimWithoutExitCodeAndWithArtifactGcNever) {
  const auto outputs = replayedOutputs(
      R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],)"
      R"("artifacts":[{"name":"train-model","s3":{"key":"artifacts/run-1/model.tgz"}},)"
      R"({"name":"logs","s3":{"key":"k"},"artifactGC":{"strategy":"OnWorkflowDeletion"}}],)"
      R"("result":"42","exitCode":"0"})");
  const json expected = json::parse(
      R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],)"
      R"("artifacts":[{"name":"train-model","s3":{"key":"artifacts/run-1/model.tgz"},)"
      R"("artifactGC":{"strategy":"Never"}},)"
      R"({"name":"logs","s3":{"key":"k"},"artifactGC":{"strategy":"Never"}}],"result":"42"})");
  EXPECT_EQ(outputs, expected);
  EXPECT_EQ(replayedOutputs("{}"), json::object());
}

TEST(ReplayedOutputs, NothingToReplayIsAnError) {
  for (const char* bad : {"", "null", "[]", "\"x\"", "{", "not json"}) {
    EXPECT_THROW(replayedOutputs(bad), DeliveryError) << bad;
  }
}

TEST(BuildTaskResult, ExactlyWhatArgosExecutorWouldHaveWrittenPlusTheMarker) {
  TaskResultTarget target{"team-a", kNodeId, kWorkflow, kWorkflowUid, std::nullopt};
  const json outputs = {{"parameters", json::array({{{"name", "p"}, {"value", "1"}}})}};
  const json expected = {{"apiVersion", "argoproj.io/v1alpha1"},
                         {"kind", "WorkflowTaskResult"},
                         {"metadata",
                          {{"name", kNodeId},
                           {"namespace", "team-a"},
                           {"labels",
                            {{"workflows.argoproj.io/workflow", kWorkflow},
                             {"workflows.argoproj.io/report-outputs-completed", "true"},
                             {"kcache.kubeflow.org/replayed-from", "17"}}},
                           {"ownerReferences", json::array({{{"apiVersion", "argoproj.io/v1alpha1"},
                                                             {"kind", "Workflow"},
                                                             {"name", kWorkflow},
                                                             {"uid", kWorkflowUid}}})}}},
                         {"outputs", outputs}};
  EXPECT_EQ(buildTaskResult(target, outputs, 17), expected);

  target.instanceId = "kfp";
  EXPECT_EQ(
      buildTaskResult(target, outputs,
                      17)["metadata"]["labels"]["workflows.argoproj.io/controller-instanceid"],
      "kfp");
}

TEST(BuildTaskResult, OnlyExactlyWhatKcacheBuildsIsAdopted) {
  TaskResultTarget target{"team-a", kNodeId, kWorkflow, kWorkflowUid, std::nullopt};
  const json outputs = {{"parameters", json::array({{{"name", "p"}, {"value", "1"}}})}};
  const json wanted = buildTaskResult(target, outputs, 17);
  json stored = wanted;  // as the API server keeps it: with its own metadata
  stored["metadata"]["uid"] = "0b0e";
  stored["metadata"]["resourceVersion"] = "42";
  EXPECT_TRUE(isTaskResultAsBuilt(stored, wanted));
  EXPECT_FALSE(isTaskResultAsBuilt(wanted, buildTaskResult(target, outputs, 18)));
  json forged = stored;  // our replay label, other outputs
  forged["outputs"]["parameters"][0]["value"] = "forged";
  EXPECT_FALSE(isTaskResultAsBuilt(forged, wanted));
  json otherOwner = stored;
  otherOwner["metadata"]["ownerReferences"][0]["uid"] = "another-workflow";
  EXPECT_FALSE(isTaskResultAsBuilt(otherOwner, wanted));
  json extraLabel = stored;
  extraLabel["metadata"]["labels"]["extra"] = "x";
  EXPECT_FALSE(isTaskResultAsBuilt(extraLabel, wanted));
  json executors = stored;
  executors["metadata"]["labels"].erase("kcache.kubeflow.org/replayed-from");
  EXPECT_FALSE(isTaskResultAsBuilt(executors, wanted));
  EXPECT_FALSE(isTaskResultAsBuilt(json(), wanted));
}

TEST(ArgoOutputsMode, ParsedAndPrinted) {
  EXPECT_EQ(parseArgoOutputsMode("auto"), ArgoOutputsMode::kAuto);
  EXPECT_EQ(parseArgoOutputsMode("annotation"), ArgoOutputsMode::kAnnotation);
  EXPECT_EQ(parseArgoOutputsMode("taskresult"), ArgoOutputsMode::kTaskResult);
  EXPECT_FALSE(parseArgoOutputsMode("TaskResult").has_value());
  EXPECT_FALSE(parseArgoOutputsMode("").has_value());
  for (auto mode :
       {ArgoOutputsMode::kAuto, ArgoOutputsMode::kAnnotation, ArgoOutputsMode::kTaskResult}) {
    EXPECT_EQ(parseArgoOutputsMode(toString(mode)), mode);
  }
}

TEST(ArgoOutputsMode, AutoChoosesFromTheLayoutWhenTaskResultsCanBeCreated) {
  using core::ArgoLayout;
  AdmissionConfig config;
  config.taskResultsAvailable = true;
  EXPECT_EQ(chooseOutputsDelivery(config, ArgoLayout::kTemplateOnMain),
            OutputsDelivery::kAnnotation);
  for (auto layout :
       {ArgoLayout::kTemplateOnInit, ArgoLayout::kTemplateOnSupervisor, ArgoLayout::kUnknown}) {
    EXPECT_EQ(chooseOutputsDelivery(config, layout), OutputsDelivery::kTaskResult);
  }
  // Without an API client, auto falls back to the annotation for every pod.
  config.taskResultsAvailable = false;
  EXPECT_EQ(chooseOutputsDelivery(config, ArgoLayout::kTemplateOnInit),
            OutputsDelivery::kAnnotation);
  // The explicit modes hold whatever the layout (taskresult then fails each hit into a miss).
  config.argoOutputs = ArgoOutputsMode::kTaskResult;
  EXPECT_EQ(chooseOutputsDelivery(config, ArgoLayout::kTemplateOnMain),
            OutputsDelivery::kTaskResult);
  config.argoOutputs = ArgoOutputsMode::kAnnotation;
  config.taskResultsAvailable = true;
  EXPECT_EQ(chooseOutputsDelivery(config, ArgoLayout::kTemplateOnSupervisor),
            OutputsDelivery::kAnnotation);
}

struct PlanCase {
  const char* fixture;
  core::ArgoLayout layout;
  OutputsDelivery autoDelivery;
  const char* templateContainer;
};

// gtest prints a parameter in each test's name; without this, a hex dump of its bytes.
void PrintTo(const PlanCase& planCase, std::ostream* out) {
  *out << planCase.fixture;
}

class PlanPerArgoLine : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanPerArgoLine, LayoutDeliveryAndKey) {
  const auto& c = GetParam();
  AdmissionConfig config;
  config.taskResultsAvailable = true;
  const auto plan = planLookup(requestFor(podFixture(c.fixture)), config);
  ASSERT_TRUE(std::holds_alternative<LookupPlan>(plan));
  const auto& lookup = std::get<LookupPlan>(plan);
  EXPECT_EQ(lookup.layout, c.layout);
  EXPECT_EQ(lookup.outputsDelivery, c.autoDelivery);
  EXPECT_EQ(lookup.templateContainer, c.templateContainer);
  EXPECT_EQ(lookup.podName, podFixture(c.fixture)["metadata"]["name"]);
  EXPECT_FALSE(lookup.templateOffloaded);
  EXPECT_EQ(lookup.key.size(), 64u);
}

INSTANTIATE_TEST_SUITE_P(
    EveryInlineTemplate, PlanPerArgoLine,
    ::testing::Values(PlanCase{"argo-3.3", core::ArgoLayout::kTemplateOnMain,
                               OutputsDelivery::kAnnotation, "wait"},
                      PlanCase{"argo-3.5", core::ArgoLayout::kTemplateOnMain,
                               OutputsDelivery::kAnnotation, "wait"},
                      PlanCase{"argo-3.6", core::ArgoLayout::kTemplateOnInit,
                               OutputsDelivery::kTaskResult, "init"},
                      PlanCase{"argo-4.1-legacy", core::ArgoLayout::kTemplateOnInit,
                               OutputsDelivery::kTaskResult, "init"},
                      PlanCase{"argo-4.1-initless", core::ArgoLayout::kTemplateOnSupervisor,
                               OutputsDelivery::kTaskResult, "supervisor"}),
    [](const auto& info) { return testing::parameterName(info.param.fixture); });

TEST(OffloadedTemplate, IsSkippedUnlessReadingOffloadedTemplatesIsOn) {
  const auto plan = planLookup(requestFor(podFixture("argo-3.6-offloaded")), AdmissionConfig{});
  ASSERT_TRUE(std::holds_alternative<Skip>(plan));
  EXPECT_EQ(std::get<Skip>(plan).reason, SkipReason::kTemplateOffloaded);
  EXPECT_EQ(toString(SkipReason::kTemplateOffloaded), "template_offloaded");
}

TEST(OffloadedTemplate, PlanWaitsForTheConfigMapThenHasTheInlineKey) {
  AdmissionConfig reading;
  reading.readOffloadedTemplates = true;
  const auto plan = planLookup(requestFor(podFixture("argo-3.6-offloaded")), reading);
  ASSERT_TRUE(std::holds_alternative<LookupPlan>(plan));
  const auto& offloaded = std::get<LookupPlan>(plan);
  EXPECT_TRUE(offloaded.templateOffloaded);
  EXPECT_TRUE(offloaded.key.empty());
  // The Workflow whose ConfigMap alone may be used: the pod's owner.
  EXPECT_EQ(offloaded.workflowUid, "1b0f7a5e-4c1d-4a3b-9f0e-2d6c8b7a9e01");

  const std::string argoTemplate =
      readJson("pods/argo-3.6-offloaded.configmap.json")["data"]["ARGO_TEMPLATE"];
  const auto resolved = withOffloadedTemplate(offloaded, argoTemplate, AdmissionConfig{});
  ASSERT_TRUE(std::holds_alternative<LookupPlan>(resolved));
  const auto inline36 = std::get<LookupPlan>(planLookup(requestFor(podFixture("argo-3.6")), {}));
  EXPECT_EQ(std::get<LookupPlan>(resolved).key, inline36.key);
  EXPECT_FALSE(std::get<LookupPlan>(resolved).templateOffloaded);

  const auto bad = withOffloadedTemplate(offloaded, "not json", AdmissionConfig{});
  ASSERT_TRUE(std::holds_alternative<Failure>(bad));
  EXPECT_EQ(std::get<Failure>(bad).reason, ErrorReason::kBadTemplate);
}

TEST(HitPatch, AnnotationDeliverySaysOutputsAreCompleteTaskResultDeliveryDoesNot) {
  const json pod = podFixture("argo-3.5");
  AdmissionDecision decision;
  decision.key = std::string(64, 'a');
  decision.outcome = Hit{7, {R"({"parameters":[]})", "42"}, 30};
  AdmissionConfig config;
  for (auto delivery : {OutputsDelivery::kAnnotation, OutputsDelivery::kTaskResult}) {
    decision.outputsDelivery = delivery;
    const json patched = pod.patch(*buildPatch(pod, decision, config));
    const json& annotations = patched["metadata"]["annotations"];
    // Restored in every mode; the echo container is the same in every mode.
    EXPECT_EQ(annotations[std::string(contract::kArgoOutputsAnnotation)], R"({"parameters":[]})");
    EXPECT_EQ(patched["spec"]["containers"], json::array({cachedStepContainer(pod, config)}));
    EXPECT_FALSE(patched["spec"].contains("initContainers"));
    EXPECT_EQ(annotations.contains(std::string(contract::kArgoReportOutputsCompleted)),
              delivery == OutputsDelivery::kAnnotation);
    if (delivery == OutputsDelivery::kAnnotation) {
      EXPECT_EQ(annotations[std::string(contract::kArgoReportOutputsCompleted)], "true");
    }
  }
}

}  // namespace
}  // namespace kcache::webhook
