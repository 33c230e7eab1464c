// Every Argo line end to end, with the real cache-server binary (webhook and watcher) against the
// fake Kubernetes API server and a real PostgreSQL. Per pod layout of docs/argo-lines.md, "Pod
// layout per line": the first run misses; its executor's task result and the pod's completion are
// recorded; the second run hits, the task result kcache creates carries exactly the fields Argo's
// controller reads, and the pod becomes the echo container. Repeated admission creates nothing
// twice; dry runs create nothing; a failed create leaves the pod as it was.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "store/cache_store.h"
#include "tests/cmd/cache_server_process.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using kube::testing::waitFor;

constexpr const char* kTaskResults = "workflowtaskresults";
constexpr const char* kNodeIdAnnotation = "workflows.argoproj.io/node-id";
constexpr const char* kWorkflowLabel = "workflows.argoproj.io/workflow";
constexpr const char* kCompletedLabel = "workflows.argoproj.io/report-outputs-completed";
constexpr const char* kCacheIdLabel = "pipelines.kubeflow.org/cache_id";

json readJson(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in);
}

// What the step's executor reports: one output parameter and one output artifact (as KFP v1
// declares every file output), and the exit code the controller adds itself.
json executorOutputs() {
  return json::parse(R"({
    "parameters": [{"name": "train-accuracy", "value": "0.93",
                    "valueFrom": {"path": "/tmp/outputs/accuracy/data"}}],
    "artifacts": [{"name": "train-model", "path": "/tmp/outputs/model/data",
                   "s3": {"key": "artifacts/run-1/train/train-model.tgz"}}],
    "exitCode": "0"})");
}

struct ArgoLine {
  std::string name;     // for the test name
  std::string fixture;  // tests/data/pods/<fixture>.json
  // Executors from 3.5.2 label their task result "false" at first and "true" when final; older
  // ones write it once, unlabelled.
  bool labelsCompletion = true;
  bool offloadedTemplate = false;
  std::string argoOutputs = "auto";  // --argo-outputs
  // Whether a hit creates a WorkflowTaskResult; otherwise the outputs travel in the annotations
  // (what auto chooses for Argo <= 3.5, whose controllers read them).
  bool deliversTaskResult = true;
};

// gtest prints a parameter in each test's name; without this, a hex dump of its bytes.
void PrintTo(const ArgoLine& line, std::ostream* out) {
  *out << line.name;
}

class ArgoEndToEndTest : public ::testing::TestWithParam<ArgoLine> {
 protected:
  void SetUp() override {
    directory_ = fs::temp_directory_path() /
                 ("kcache-argo-e2e-" + std::to_string(::getpid()) + "-" + GetParam().name);
    fs::create_directories(directory_);
    auto& postgres = test_support::PostgresServer::shared();
    dsn_ = postgres.createFreshDatabase("argo_" + GetParam().name);
    const std::string database = dsn_.substr(dsn_.rfind("dbname=") + 7);
    cmd_testing::writeWebhookCertificate(directory_);
    cmd_testing::writeKubeconfig(directory_ / "kubeconfig", fake_);
    listenPort_ = test_support::findFreePort();
    const uint16_t httpPort = test_support::findFreePort();
    server_ = std::make_unique<cmd_testing::CacheServerProcess>(
        std::vector<std::string>{"--db-host",
                                 "127.0.0.1",
                                 "--db-port",
                                 std::to_string(postgres.port()),
                                 "--db-user",
                                 "postgres",
                                 "--db-name",
                                 database,
                                 "--tls-dir",
                                 directory_.string(),
                                 "--listen-address",
                                 "127.0.0.1",
                                 "--listen-port",
                                 std::to_string(listenPort_),
                                 "--http-port",
                                 std::to_string(httpPort),
                                 "--kubeconfig",
                                 (directory_ / "kubeconfig").string(),
                                 "--argo-outputs",
                                 GetParam().argoOutputs,
                                 "--read-offloaded-templates",
                                 GetParam().offloadedTemplate ? "true" : "false",
                                 "--log-level",
                                 "debug"},
        "kcache-0", directory_ / "server.log");
    // Ready: the webhook answers and the store has; the watcher leads (it holds the Lease).
    ASSERT_TRUE(waitFor(
        [&] {
          try {
            return webhook::testing::httpGet(httpPort, "/readyz").status == 200;
          } catch (const std::exception&) {
            return false;
          }
        },
        std::chrono::seconds(60)))
        << log();
    ASSERT_TRUE(waitFor([&] { return fake_.lease("kcache", "kcache-watcher").has_value(); },
                        std::chrono::seconds(60)))
        << log();
    client_ = std::make_unique<webhook::testing::HttpsClient>(
        listenPort_, std::vector<fs::path>{directory_ / "cert.pem"});
    fixture_ = readJson(fs::path(KCACHE_TEST_DATA_DIR) / "pods" / (GetParam().fixture + ".json"));
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    fs::remove_all(directory_);
  }

  std::string log() const { return cmd_testing::readLog(directory_ / "server.log"); }

  // The fixture pod as Argo would create it for run `run` of the pipeline: its own workflow,
  // node id and pod name; the same template, hence the same execution key.
  json podOfRun(int run) {
    json pod = fixture_;
    const std::string workflow = "pipeline-run" + std::to_string(run);
    auto& metadata = pod["metadata"];
    metadata["name"] = workflow + "-train-1727472585";
    metadata["labels"][kWorkflowLabel] = workflow;
    metadata["annotations"][kNodeIdAnnotation] = workflow + "-1727472585";
    for (auto& owner : metadata["ownerReferences"]) {
      owner["name"] = workflow;
      owner["uid"] = "00000000-0000-4000-8000-00000000000" + std::to_string(run);
    }
    if (GetParam().offloadedTemplate) {
      json configMap = readJson(fs::path(KCACHE_TEST_DATA_DIR) / "pods" /
                                (GetParam().fixture + ".configmap.json"));
      configMap["metadata"]["name"] = metadata["name"];
      configMap["metadata"]["labels"][kWorkflowLabel] = workflow;
      // Argo makes the run's Workflow its owner; kcache reads no other ConfigMap.
      configMap["metadata"]["ownerReferences"] = metadata["ownerReferences"];
      fake_.createObject("configmaps", configMap);
    }
    return pod;
  }

  static std::string nodeIdOf(const json& pod) {
    return pod["metadata"]["annotations"][kNodeIdAnnotation].get<std::string>();
  }

  webhook::testing::AppliedAnswer admit(const json& pod, bool dryRun = false) {
    const json review =
        webhook::testing::podCreateReview(pod, "system:serviceaccount:argo:argo", dryRun);
    const auto response = client_->postReview(review.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    return webhook::testing::applyAnswer(pod, response.body);
  }

  // What Argo's wait container and the kubelet do for a step that ran: the task result, then the
  // pod's success.
  void runStep(const json& admittedPod) {
    const std::string nodeId = nodeIdOf(admittedPod);
    const std::string ns = admittedPod["metadata"]["namespace"];
    json taskResult = {
        {"apiVersion", "argoproj.io/v1alpha1"},
        {"kind", "WorkflowTaskResult"},
        {"metadata",
         {{"name", nodeId},
          {"namespace", ns},
          {"labels", {{kWorkflowLabel, admittedPod["metadata"]["labels"][kWorkflowLabel]}}}}}};
    if (GetParam().labelsCompletion) {
      taskResult["metadata"]["labels"][kCompletedLabel] = "false";
      fake_.createObject(kTaskResults, taskResult);
      fake_.modifyObject(kTaskResults, ns, nodeId, [](json& object) {
        object["outputs"] = executorOutputs();
        object["metadata"]["labels"][kCompletedLabel] = "true";
      });
    } else {
      taskResult["outputs"] = executorOutputs();
      fake_.createObject(kTaskResults, taskResult);
    }
    fake_.modifyPod(ns, admittedPod["metadata"]["name"], [](json& pod) {
      pod["status"] = json::parse(R"({"phase": "Succeeded", "containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 0,
          "startedAt": "2026-11-22T08:00:00Z", "finishedAt": "2026-11-22T08:03:20Z"}}}]})");
    });
  }

  std::string cacheIdOf(const json& pod) {
    const auto stored = fake_.pod(pod["metadata"]["namespace"], pod["metadata"]["name"]);
    if (!stored) return "";
    return stored->at("metadata").value("labels", json::object()).value(kCacheIdLabel, "");
  }

  size_t taskResultsNamed(const std::string& name) {
    size_t count = 0;
    for (const auto& object : fake_.objects(kTaskResults))
      count += object["metadata"]["name"] == name;
    return count;
  }

  static bool isEchoPod(const json& pod) {
    const auto& containers = pod["spec"]["containers"];
    return containers.size() == 1 && containers[0]["name"] == "main" &&
           containers[0]["command"][0] == "echo" && !pod["spec"].contains("initContainers");
  }

  fakekube::FakeKubeServer fake_;
  fs::path directory_;
  std::string dsn_;
  uint16_t listenPort_ = 0;
  std::unique_ptr<cmd_testing::CacheServerProcess> server_;
  std::unique_ptr<webhook::testing::HttpsClient> client_;
  json fixture_;
};

TEST_P(ArgoEndToEndTest, FirstRunIsRecordedFromItsTaskResultAndTheSecondRunIsReplayed) {
  // Run 1: a miss, tagged for the watcher; nothing is created for it.
  const json pod1 = podOfRun(1);
  const auto miss = admit(pod1);
  ASSERT_TRUE(miss.allowed);
  ASSERT_TRUE(miss.hasPatch) << log();
  EXPECT_FALSE(isEchoPod(miss.patchedPod));
  EXPECT_EQ(miss.patchedPod["metadata"]["labels"][kCacheIdLabel], "");
  EXPECT_TRUE(fake_.objects(kTaskResults).empty());
  fake_.createPod(miss.patchedPod);
  runStep(miss.patchedPod);
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(pod1).empty(); }, std::chrono::seconds(60))) << log();
  const std::string entryId = cacheIdOf(pod1);

  // Recorded in the one shape every Argo line replays: the outputs without the exit code.
  store::StoreOptions options;
  options.dsn = dsn_;
  store::CacheStore store(options);
  const auto entries = store.listEntries({}, 0, 10);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(std::to_string(entries[0].id), entryId);
  EXPECT_EQ(entries[0].namespaceName, "team-a");
  const json recorded = json::parse(entries[0].executionOutput);
  json expectedOutputs = executorOutputs();
  expectedOutputs.erase("exitCode");
  EXPECT_EQ(json::parse(recorded.at("workflows.argoproj.io/outputs").get<std::string>()),
            expectedOutputs);

  // Run 2: a hit; the pod is the echo container.
  const json pod2 = podOfRun(2);
  const std::string node2 = nodeIdOf(pod2);
  const auto hit = admit(pod2);
  ASSERT_TRUE(hit.allowed);
  ASSERT_TRUE(hit.hasPatch) << log();
  EXPECT_TRUE(isEchoPod(hit.patchedPod)) << hit.patchedPod.dump(2) << log();
  EXPECT_EQ(hit.patchedPod["metadata"]["labels"][kCacheIdLabel], entryId);
  // The outputs annotation is restored on every hit, whichever way they are delivered.
  EXPECT_EQ(json::parse(hit.patchedPod["metadata"]["annotations"]["workflows.argoproj.io/outputs"]
                            .get<std::string>()),
            expectedOutputs);

  if (!GetParam().deliversTaskResult) {
    // Argo <= 3.5 reads the annotation, counted only with report-outputs-completed from 3.5.11.
    EXPECT_EQ(hit.patchedPod["metadata"]["annotations"][kCompletedLabel], "true");
    EXPECT_EQ(fake_.objects(kTaskResults).size(), 1u) << "only the executor's of run 1";
    const json pod3 = podOfRun(3);
    EXPECT_TRUE(isEchoPod(admit(pod3, true).patchedPod));  // a dry run has no side effect here
    EXPECT_EQ(taskResultsNamed(nodeIdOf(pod3)), 0u);
    return;
  }

  // The task result exists before the answer, with exactly what the controller reads.
  const auto created = fake_.object(kTaskResults, "team-a", node2);
  ASSERT_TRUE(created.has_value()) << log();
  const auto& metadata = created->at("metadata");
  EXPECT_EQ(metadata.at("labels"), (json{{kWorkflowLabel, "pipeline-run2"},
                                         {kCompletedLabel, "true"},
                                         {"kcache.kubeflow.org/replayed-from", entryId}}));
  EXPECT_EQ(metadata.at("ownerReferences"),
            json::parse(R"([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                             "name": "pipeline-run2",
                             "uid": "00000000-0000-4000-8000-000000000002"}])"));
  json replayed = expectedOutputs;
  for (auto& artifact : replayed["artifacts"]) artifact["artifactGC"] = {{"strategy", "Never"}};
  EXPECT_EQ(created->at("outputs"), replayed);
  EXPECT_EQ(created->at("kind"), "WorkflowTaskResult");
  EXPECT_EQ(created->at("apiVersion"), "argoproj.io/v1alpha1");

  // The same pod admitted again (the controller retries creates): hit again, still one object.
  const auto again = admit(pod2);
  EXPECT_TRUE(isEchoPod(again.patchedPod)) << log();
  EXPECT_EQ(taskResultsNamed(node2), 1u);
  EXPECT_EQ(fake_.object(kTaskResults, "team-a", node2)->at("metadata").at("uid"),
            metadata.at("uid"));

  // A dry run creates nothing and rewrites nothing.
  const json pod3 = podOfRun(3);
  const auto dryRun = admit(pod3, true);
  EXPECT_TRUE(dryRun.allowed);
  EXPECT_FALSE(isEchoPod(dryRun.patchedPod));
  EXPECT_EQ(taskResultsNamed(nodeIdOf(pod3)), 0u);

  // A create the API server refuses: the step simply runs, untouched.
  const json pod4 = podOfRun(4);
  fake_.failNextRequests(1, 403, "/workflowtaskresults");
  const auto refused = admit(pod4);
  EXPECT_TRUE(refused.allowed);
  EXPECT_FALSE(isEchoPod(refused.patchedPod)) << log();
  EXPECT_EQ(taskResultsNamed(nodeIdOf(pod4)), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    ArgoLines, ArgoEndToEndTest,
    ::testing::Values(ArgoLine{"argo33", "argo-3.3", false, false, "auto", false},
                      ArgoLine{"argo35", "argo-3.5", true, false, "auto", false},
                      ArgoLine{"argo33taskresult", "argo-3.3", false, false, "taskresult", true},
                      ArgoLine{"argo35taskresult", "argo-3.5", true, false, "taskresult", true},
                      ArgoLine{"argo36", "argo-3.6", true, false, "auto", true},
                      ArgoLine{"argo41legacy", "argo-4.1-legacy", true, false, "auto", true},
                      ArgoLine{"argo41initless", "argo-4.1-initless", true, false, "auto", true},
                      ArgoLine{"argo36offloaded", "argo-3.6-offloaded", true, true, "auto", true}),
    [](const ::testing::TestParamInfo<ArgoLine>& info) { return info.param.name; });

}  // namespace
}  // namespace kcache
