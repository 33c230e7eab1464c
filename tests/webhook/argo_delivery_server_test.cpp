// Argo outputs delivery end to end: the real webhook server over real TLS, the real CacheStore on
// a throwaway PostgreSQL, and the fake Kubernetes API server (tests/fakekube) holding Workflows,
// ConfigMaps and the WorkflowTaskResults the webhook creates. Per Argo line (docs/argo-lines.md,
// "Pod layout per line"): a miss creates nothing; a hit creates exactly the task result Argo's
// executor would have written (plus kcache's marker) before the pod is rewritten into the echo
// container; a repeated admission creates nothing twice; every failure leaves the pod's containers
// as they are.
#include <gtest/gtest.h>

#include <memory>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "core/metrics.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "kube/kube_client.h"
#include "store/cache_store.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/argo_test_support.h"
#include "tests/webhook/server_test_fixture.h"
#include "tests/webhook/webhook_test_support.h"
#include "webhook/admission_handler.h"
#include "webhook/patch.h"
#include "webhook/server.h"
#include "webhook/task_result.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
namespace contract = core::contract;

constexpr const char* kNamespace = "team-a";
constexpr const char* kWorkflow = testing::kFixtureWorkflow;
constexpr const char* kNodeId = testing::kFixtureNodeId;
constexpr const char* kTaskResults = "workflowtaskresults";
// What the original run's executor reported: a parameter, an artifact, the exit code.
constexpr const char* kOutputs =
    R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],)"
    R"("artifacts":[{"name":"train-model","s3":{"key":"artifacts/run-1/model.tgz"}}],)"
    R"("exitCode":"0"})";

json readData(const std::string& relativePath) {
  return testing::readTestData(relativePath);
}

json reviewOf(const json& pod, bool dryRun = false) {
  static int counter = 0;
  const json groupVersion = {{"group", ""}, {"version", "v1"}};
  json kind = groupVersion;
  kind["kind"] = "Pod";
  json resource = groupVersion;
  resource["resource"] = "pods";
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "705ab4f5-6393-11e8-b7cc-4201" + std::to_string(100000000 + ++counter)},
            {"kind", kind},
            {"resource", resource},
            {"requestKind", kind},
            {"requestResource", resource},
            {"name", pod["metadata"]["name"]},
            {"namespace", kNamespace},
            {"operation", "CREATE"},
            {"userInfo", {{"username", "system:serviceaccount:kubeflow:argo"}}},
            {"object", pod},
            {"oldObject", nullptr},
            {"dryRun", dryRun},
            {"options", {{"apiVersion", "meta.k8s.io/v1"}, {"kind", "CreateOptions"}}}}}};
}

std::string inlineTemplateOf(const json& pod) {
  const auto found = core::findArgoTemplate(pod);
  if (!found || found->offloaded) throw std::runtime_error("the pod has no inline template");
  return found->argoTemplate;
}

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The webhook as cache-server wires it: its own API client (short timeout) behind a
// TaskResultDelivery, the handler, the TLS server.
class ArgoWebhook {
 public:
  ArgoWebhook(store::CacheLookup& lookup, const fakekube::FakeKubeServer& kube,
              AdmissionConfig config, bool withApiClient = true)
      : certFile_(dir_.path() / "cert.pem"), keyFile_(dir_.path() / "key.pem") {
    testing::writeSelfSignedCertificate(certFile_, keyFile_, "kcache-argo-test");
    if (withApiClient) {
      auto cluster = kube::testing::configFor(kube);
      cluster.requestTimeout = std::chrono::milliseconds(500);
      api_ = kube::makeKubeClient(cluster);
    }
    config.taskResultsAvailable = api_ != nullptr;
    delivery_ = std::make_unique<TaskResultDelivery>(api_.get(), metrics_);
    handler_ = std::make_unique<AdmissionHandler>(config, lookup, metrics_, delivery_.get());
    auto options = testing::RunningServer::defaultOptions();
    // Bounds the offloaded template's read and the lookup; the delivery runs after the lookup.
    options.lookupDeadline = std::chrono::milliseconds(3000);
    options.certFile = certFile_;
    options.keyFile = keyFile_;
    server_ = std::make_unique<WebhookServer>(options, *handler_, metrics_);
    server_->start();
    client_ = std::make_unique<testing::HttpsClient>(server_->tlsPort(),
                                                     std::vector<std::filesystem::path>{certFile_});
  }
  ~ArgoWebhook() { server_->stop(); }

  testing::AppliedAnswer admit(const json& review) {
    const auto response = client_->postReview(review.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    auto applied = testing::applyAnswer(review["request"]["object"], response.body);
    EXPECT_TRUE(applied.allowed);
    return applied;
  }

  double counter(const std::string& name, const core::MetricLabels& labels) {
    return metrics_.counter(name, "", labels).value();
  }

 private:
  testing::TempDir dir_;
  std::filesystem::path certFile_, keyFile_;
  core::MetricsRegistry metrics_;
  std::unique_ptr<kube::KubeApi> api_;
  std::unique_ptr<TaskResultDelivery> delivery_;
  std::unique_ptr<AdmissionHandler> handler_;
  std::unique_ptr<WebhookServer> server_;
  std::unique_ptr<testing::HttpsClient> client_;
};

class ArgoDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& postgres = test_support::PostgresServer::shared();
    if (!postgres.running()) postgres.start();
    store::StoreOptions options;
    options.dsn = postgres.createFreshDatabase("argo");
    options.lookupTimeout = std::chrono::milliseconds(1000);
    cacheStore = std::make_unique<store::CacheStore>(options);
    workflow = kube.createObject("workflows",
                                 {{"apiVersion", "argoproj.io/v1alpha1"},
                                  {"kind", "Workflow"},
                                  {"metadata", {{"name", kWorkflow}, {"namespace", kNamespace}}}});
  }

  // A pod fixture whose Workflow ownerReference names the fake server's Workflow (its uid is the
  // server's), so the task result's owner is the same whether it comes from the pod or a GET.
  json podFixture(const std::string& name) const {
    json pod = testing::argoPodFixture(name);
    if (pod["metadata"].contains("ownerReferences")) {
      pod["metadata"]["ownerReferences"][0]["uid"] = workflow["metadata"]["uid"];
    }
    return pod;
  }

  // The ConfigMap Argo offloads argo-3.6-offloaded's template to, owned by the same Workflow.
  json offloadConfigMap() const {
    json configMap = readData("pods/argo-3.6-offloaded.configmap.json");
    configMap["metadata"]["ownerReferences"][0]["uid"] = workflow["metadata"]["uid"];
    return configMap;
  }

  AdmissionConfig configFor(ArgoOutputsMode mode, bool readOffloadedTemplates = true) {
    AdmissionConfig config;
    config.argoOutputs = mode;
    config.readOffloadedTemplates = readOffloadedTemplates;
    return config;
  }

  int64_t configMapRequests() const {
    int64_t count = 0;
    for (const auto& request : kube.requests()) {
      if (request.path.find("/configmaps") != std::string::npos) ++count;
    }
    return count;
  }

  int64_t record(const std::string& argoTemplate, const std::string& outputs = kOutputs) {
    store::NewEntry entry;
    entry.key = testing::keyInScope(argoTemplate, store::CacheScope::kNamespace, kNamespace);
    entry.namespaceName = kNamespace;
    entry.podName = "my-pipeline-earlier-train-1";
    entry.executionTemplate = argoTemplate;
    entry.executionOutput = core::encodeExecutionOutput({outputs, "42"});
    entry.runDurationSeconds = 90;
    entry.recordedAtInSec = nowSeconds() - 5;
    return cacheStore->record(store::CacheScope::kNamespace, entry);
  }

  // The task result a hit on entry `id` must create, exactly.
  json expectedTaskResult(int64_t id) const {
    return {{"apiVersion", "argoproj.io/v1alpha1"},
            {"kind", "WorkflowTaskResult"},
            {"metadata",
             {{"name", kNodeId},
              {"namespace", kNamespace},
              {"labels",
               {{"workflows.argoproj.io/workflow", kWorkflow},
                {"workflows.argoproj.io/report-outputs-completed", "true"},
                {"kcache.kubeflow.org/replayed-from", std::to_string(id)}}},
              {"ownerReferences", json::array({{{"apiVersion", "argoproj.io/v1alpha1"},
                                                {"kind", "Workflow"},
                                                {"name", kWorkflow},
                                                {"uid", workflow["metadata"]["uid"]}}})}}},
            {"outputs", json::parse(R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],)"
                                    R"("artifacts":[{"name":"train-model",)"
                                    R"("s3":{"key":"artifacts/run-1/model.tgz"},)"
                                    R"("artifactGC":{"strategy":"Never"}}]})")}};
  }

  std::vector<fakekube::ReceivedRequest> taskResultCreates() const {
    std::vector<fakekube::ReceivedRequest> creates;
    for (auto& request : kube.requests()) {
      if (request.method == "POST" && request.path.find(kTaskResults) != std::string::npos) {
        creates.push_back(request);
      }
    }
    return creates;
  }

  static std::string cacheIdOf(const testing::AppliedAnswer& applied) {
    if (!applied.hasPatch) return "<no patch>";
    return applied.patchedPod["metadata"]["labels"].value(std::string(contract::kCacheIdLabel),
                                                          "<none>");
  }

  // A hit: the pod is the echo container only, with the entry's id and the outputs annotation.
  static void expectEchoPod(const testing::AppliedAnswer& applied, int64_t id) {
    ASSERT_TRUE(applied.hasPatch);
    const json& pod = applied.patchedPod;
    // Built from the patched pod: the echo container inherits from `main`, so it is what
    // cachedStepContainer makes of itself.
    EXPECT_EQ(pod["spec"]["containers"],
              json::array({cachedStepContainer(pod, AdmissionConfig{})}));
    EXPECT_FALSE(pod["spec"].contains("initContainers"));
    EXPECT_EQ(cacheIdOf(applied), std::to_string(id));
    EXPECT_EQ(pod["metadata"]["labels"][std::string(contract::kReusedFromCacheLabel)], "true");
    EXPECT_EQ(pod["metadata"]["annotations"][std::string(contract::kArgoOutputsAnnotation)],
              kOutputs);
  }

  // Not a hit: the containers are the pod's own, tagged as a miss so that this run is recorded.
  static void expectStepRuns(const json& pod, const testing::AppliedAnswer& applied) {
    EXPECT_EQ(applied.patchedPod["spec"], pod["spec"]);
    EXPECT_EQ(cacheIdOf(applied), "");
    EXPECT_FALSE(applied.patchedPod["metadata"]["labels"].contains(
        std::string(contract::kReusedFromCacheLabel)));
  }

  fakekube::FakeKubeServer kube;
  std::unique_ptr<store::CacheStore> cacheStore;
  json workflow;
};

class TaskResultPerArgoLine : public ArgoDeliveryTest,
                              public ::testing::WithParamInterface<const char*> {};

TEST_P(TaskResultPerArgoLine, MissThenHitCreatesTheTaskResultOnceThenPatchesAgain) {
  const json pod = podFixture(GetParam());
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));

  const auto miss = webhook.admit(reviewOf(pod));
  EXPECT_EQ(cacheIdOf(miss), "") << "nothing recorded yet";
  EXPECT_EQ(miss.patchedPod["spec"], pod["spec"]);
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
  EXPECT_TRUE(taskResultCreates().empty());

  const auto id = record(inlineTemplateOf(pod));
  const auto hit = webhook.admit(reviewOf(pod));
  expectEchoPod(hit, id);
  // Task-result delivery does not add report-outputs-completed to the pod.
  EXPECT_FALSE(hit.patchedPod["metadata"]["annotations"].contains(
      std::string(contract::kArgoReportOutputsCompleted)));
  const auto creates = taskResultCreates();
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].status, 201);
  EXPECT_EQ(creates[0].path, std::string("/apis/argoproj.io/v1alpha1/namespaces/") + kNamespace +
                                 "/" + kTaskResults);
  EXPECT_EQ(creates[0].body, expectedTaskResult(id));
  const auto stored = kube.object(kTaskResults, kNamespace, kNodeId);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ((*stored)["outputs"], expectedTaskResult(id)["outputs"]);

  // The controller may send the same pod again: the task result is ours, so the pod is patched
  // again, and nothing new is created.
  expectEchoPod(webhook.admit(reviewOf(pod)), id);
  EXPECT_EQ(kube.objects(kTaskResults).size(), 1u);
  const auto again = taskResultCreates();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].status, 409);
  EXPECT_EQ(webhook.counter("kcache_task_results_total", {{"result", "created"}}), 1);
  EXPECT_EQ(webhook.counter("kcache_task_results_total", {{"result", "already_present"}}), 1);
}

TEST_P(TaskResultPerArgoLine, FailedCreateLeavesThePodToRun) {
  const json pod = podFixture(GetParam());
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));
  record(inlineTemplateOf(pod));
  for (int status : {403, 500}) {
    kube.failNextRequests(1, status, kTaskResults);
    expectStepRuns(pod, webhook.admit(reviewOf(pod)));
    EXPECT_TRUE(kube.objects(kTaskResults).empty()) << status;
  }
  EXPECT_EQ(webhook.counter("kcache_task_results_total", {{"result", "failed"}}), 2);
}

TEST_P(TaskResultPerArgoLine, DryRunCreatesNothingAndDoesNotRewrite) {
  const json pod = podFixture(GetParam());
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));
  record(inlineTemplateOf(pod));
  expectStepRuns(pod, webhook.admit(reviewOf(pod, /*dryRun=*/true)));
  EXPECT_TRUE(taskResultCreates().empty());
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
}

INSTANTIATE_TEST_SUITE_P(ArgoLines, TaskResultPerArgoLine,
                         ::testing::Values("argo-3.3", "argo-3.5", "argo-3.6", "argo-4.1-legacy",
                                           "argo-4.1-initless"),
                         [](const auto& info) { return testing::parameterName(info.param); });

TEST_F(ArgoDeliveryTest, CreateTimingOutLeavesThePodToRun) {
  const json pod = podFixture("argo-3.6");
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));
  record(inlineTemplateOf(pod));
  // Longer than the webhook client's 500 ms. Two: cpprestsdk sends a request again, once, when it
  // fails on a reused connection (the timeout closes it). The fake server still creates the task
  // result afterwards, as a real API server would; the pod runs (docs/argo-lines.md, "The hit, step
  // by step": any doubt, no rewrite).
  kube.delayNextRequests(2, std::chrono::milliseconds(1500), kTaskResults, "POST");
  expectStepRuns(pod, webhook.admit(reviewOf(pod)));
  EXPECT_EQ(webhook.counter("kcache_task_results_total", {{"result", "failed"}}), 1);
  kube::testing::waitFor([&] { return kube.object(kTaskResults, kNamespace, kNodeId).has_value(); },
                         std::chrono::seconds(5));
}

TEST_F(ArgoDeliveryTest, ForeignTaskResultOfTheSameNameLeavesThePodToRun) {
  const json pod = podFixture("argo-4.1-legacy");
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));
  const auto id = record(inlineTemplateOf(pod));
  // The executor's own (no kcache marker), and a replay of another entry.
  json executors = expectedTaskResult(id);
  executors["metadata"]["labels"].erase("kcache.kubeflow.org/replayed-from");
  kube.createObject(kTaskResults, executors);
  expectStepRuns(pod, webhook.admit(reviewOf(pod)));

  kube.modifyObject(kTaskResults, kNamespace, kNodeId, [&](json& taskResult) {
    taskResult["metadata"]["labels"]["kcache.kubeflow.org/replayed-from"] = std::to_string(id + 1);
  });
  expectStepRuns(pod, webhook.admit(reviewOf(pod)));
  EXPECT_EQ(kube.objects(kTaskResults).size(), 1u);
}

TEST_F(ArgoDeliveryTest, WorkflowUidComesFromTheWorkflowWhenThePodHasNoOwner) {
  json pod = podFixture("argo-3.6");
  pod["metadata"].erase("ownerReferences");
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));
  const auto id = record(inlineTemplateOf(pod));
  expectEchoPod(webhook.admit(reviewOf(pod)), id);
  const auto stored = kube.object(kTaskResults, kNamespace, kNodeId);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ((*stored)["metadata"]["ownerReferences"][0]["uid"], workflow["metadata"]["uid"]);

  // Without the Workflow there is no owner to give: no delivery, the step runs.
  kube.deleteObject(kTaskResults, kNamespace, kNodeId);
  kube.deleteObject("workflows", kNamespace, kWorkflow);
  expectStepRuns(pod, webhook.admit(reviewOf(pod)));
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
}

TEST_F(ArgoDeliveryTest, EntryWithoutOutputsIsNotReplayed) {
  const json pod = podFixture("argo-3.6");
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult));
  record(inlineTemplateOf(pod), "");
  expectStepRuns(pod, webhook.admit(reviewOf(pod)));
  EXPECT_TRUE(taskResultCreates().empty());
}

TEST_F(ArgoDeliveryTest, OffloadedTemplateIsReadFromTheConfigMapAndGivesTheInlineKey) {
  const json offloaded = podFixture("argo-3.6-offloaded");
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto));
  // Recorded from the same step run with its template inline.
  const auto id = record(inlineTemplateOf(podFixture("argo-3.6")));

  // No ConfigMap: no key, nothing touched, counted.
  const auto unavailable = webhook.admit(reviewOf(offloaded));
  EXPECT_FALSE(unavailable.hasPatch);
  EXPECT_EQ(webhook.counter("kcache_admission_errors_total", {{"reason", "template_unavailable"}}),
            1);

  // A ConfigMap without the key: the same.
  json configMap = offloadConfigMap();
  json emptyConfigMap = configMap;
  emptyConfigMap["data"] = json::object();
  kube.createObject("configmaps", emptyConfigMap);
  EXPECT_FALSE(webhook.admit(reviewOf(offloaded)).hasPatch);
  kube.deleteObject("configmaps", kNamespace, configMap["metadata"]["name"]);

  kube.createObject("configmaps", configMap);
  const auto hit = webhook.admit(reviewOf(offloaded));
  expectEchoPod(hit, id);
  EXPECT_EQ(hit.patchedPod["metadata"]["annotations"]
                          [std::string(contract::kExecutionCacheKeyAnnotation)],
            testing::keyInScope(inlineTemplateOf(podFixture("argo-3.6")),
                                store::CacheScope::kNamespace, kNamespace));
  EXPECT_EQ(kube.objects(kTaskResults).size(), 1u) << "auto on a >= 3.6 pod: a task result";
  EXPECT_EQ(webhook.counter("kcache_admission_errors_total", {{"reason", "template_unavailable"}}),
            2);
}

TEST_F(ArgoDeliveryTest, OffloadedTemplateIsNotReadByDefault) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto, false));
  record(inlineTemplateOf(podFixture("argo-3.6")));
  kube.createObject("configmaps", offloadConfigMap());
  kube.clearRequests();
  EXPECT_FALSE(webhook.admit(reviewOf(podFixture("argo-3.6-offloaded"))).hasPatch);
  EXPECT_EQ(webhook.counter("kcache_admission_skips_total", {{"reason", "template_offloaded"}}), 1);
  EXPECT_EQ(configMapRequests(), 0) << "off, kcache never asks for a ConfigMap";
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
}

TEST_F(ArgoDeliveryTest, OffloadedTemplateFromAConfigMapTheWorkflowDoesNotOwnIsNotUsed) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto));
  record(inlineTemplateOf(podFixture("argo-3.6")));
  // Anyone who may create ConfigMaps in the namespace can pre-create one named after the pod.
  json planted = offloadConfigMap();
  planted["metadata"].erase("ownerReferences");
  kube.createObject("configmaps", planted);
  EXPECT_FALSE(webhook.admit(reviewOf(podFixture("argo-3.6-offloaded"))).hasPatch);
  kube.deleteObject("configmaps", kNamespace, planted["metadata"]["name"]);
  // Owned by another Workflow: the same.
  planted["metadata"]["ownerReferences"] =
      json::array({{{"apiVersion", "argoproj.io/v1alpha1"},
                    {"kind", "Workflow"},
                    {"name", "other"},
                    {"uid", "00000000-0000-0000-0000-000000000000"},
                    {"controller", true}}});
  kube.createObject("configmaps", planted);
  EXPECT_FALSE(webhook.admit(reviewOf(podFixture("argo-3.6-offloaded"))).hasPatch);
  EXPECT_EQ(webhook.counter("kcache_admission_errors_total", {{"reason", "template_unavailable"}}),
            2);
  EXPECT_EQ(webhook.counter("kcache_offloaded_template_reads_total", {{"result", "failed"}}), 2);
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
}

TEST_F(ArgoDeliveryTest, OffloadedTemplateReadTooSlowlyIsLeftAlone) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto));
  record(inlineTemplateOf(podFixture("argo-3.6")));
  kube.createObject("configmaps", offloadConfigMap());
  // Slower than the client's 500 ms; twice, as cpprestsdk resends once on a reused connection.
  kube.delayNextRequests(2, std::chrono::milliseconds(1500), "/configmaps/", "GET");
  EXPECT_FALSE(webhook.admit(reviewOf(podFixture("argo-3.6-offloaded"))).hasPatch);
  EXPECT_EQ(webhook.counter("kcache_admission_errors_total", {{"reason", "template_unavailable"}}),
            1);
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
}

TEST_F(ArgoDeliveryTest, OffloadedTemplateWithoutApiClientIsLeftAlone) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto),
                      /*withApiClient=*/false);
  record(inlineTemplateOf(podFixture("argo-3.6")));
  EXPECT_FALSE(webhook.admit(reviewOf(podFixture("argo-3.6-offloaded"))).hasPatch);
  EXPECT_EQ(webhook.counter("kcache_admission_errors_total", {{"reason", "template_unavailable"}}),
            1);
}

TEST_F(ArgoDeliveryTest, AnnotationModeCreatesNoTaskResultAndSetsBothAnnotations) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAnnotation));
  for (const char* line : {"argo-3.5", "argo-3.6"}) {
    const json pod = podFixture(line);
    const auto id = record(inlineTemplateOf(pod));
    const auto hit = webhook.admit(reviewOf(pod));
    expectEchoPod(hit, id);
    EXPECT_EQ(hit.patchedPod["metadata"]["annotations"]
                            [std::string(contract::kArgoReportOutputsCompleted)],
              "true")
        << line;
  }
  EXPECT_TRUE(taskResultCreates().empty());
  EXPECT_TRUE(kube.objects(kTaskResults).empty());
}

TEST_F(ArgoDeliveryTest, AutoModeDecidesFromEachPodsLayout) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto));
  const json old = podFixture("argo-3.5");
  const auto oldId = record(inlineTemplateOf(old));
  const auto oldHit = webhook.admit(reviewOf(old));
  expectEchoPod(oldHit, oldId);
  EXPECT_TRUE(oldHit.patchedPod["metadata"]["annotations"].contains(
      std::string(contract::kArgoReportOutputsCompleted)));
  EXPECT_TRUE(taskResultCreates().empty()) << "Argo <= 3.5: the annotation";

  const json initless = podFixture("argo-4.1-initless");
  const auto newId = record(inlineTemplateOf(initless));
  expectEchoPod(webhook.admit(reviewOf(initless)), newId);
  EXPECT_EQ(taskResultCreates().size(), 1u) << "Argo 4.1 init-less: a task result";

  EXPECT_EQ(webhook.counter("kcache_argo_outputs_mode_total",
                            {{"mode", "annotation"}, {"layout", "argo<=3.5"}}),
            1);
  EXPECT_EQ(webhook.counter("kcache_argo_outputs_mode_total",
                            {{"mode", "taskresult"}, {"layout", "argo4.1-initless"}}),
            1);
}

TEST_F(ArgoDeliveryTest, AutoWithoutApiClientFallsBackToTheAnnotation) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kAuto),
                      /*withApiClient=*/false);
  const json pod = podFixture("argo-3.6");
  const auto id = record(inlineTemplateOf(pod));
  const auto hit = webhook.admit(reviewOf(pod));
  expectEchoPod(hit, id);
  EXPECT_EQ(
      hit.patchedPod["metadata"]["annotations"][std::string(contract::kArgoReportOutputsCompleted)],
      "true");
  EXPECT_TRUE(kube.requests().empty());
}

TEST_F(ArgoDeliveryTest, TaskResultModeWithoutApiClientRunsEveryStep) {
  ArgoWebhook webhook(*cacheStore, kube, configFor(ArgoOutputsMode::kTaskResult),
                      /*withApiClient=*/false);
  const json pod = podFixture("argo-3.6");
  record(inlineTemplateOf(pod));
  expectStepRuns(pod, webhook.admit(reviewOf(pod)));
}

}  // namespace
}  // namespace kcache::webhook
