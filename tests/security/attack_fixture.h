#pragma once
// The attack suite's setting: the real cache-server binary (webhook and watcher) against the fake
// Kubernetes API server and a real PostgreSQL, with the pods of one KFP v1 step as Argo creates
// them, and the calls an attacker with ordinary namespace rights can make.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/cache_store.h"
#include "tests/cmd/cache_server_process.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache::security_testing {

using nlohmann::json;
namespace fs = std::filesystem;
using kube::testing::waitFor;

inline constexpr const char* kTaskResults = "workflowtaskresults";
inline constexpr const char* kNodeIdAnnotation = "workflows.argoproj.io/node-id";
inline constexpr const char* kWorkflowLabel = "workflows.argoproj.io/workflow";
inline constexpr const char* kCompletedLabel = "workflows.argoproj.io/report-outputs-completed";
inline constexpr const char* kCacheIdLabel = "pipelines.kubeflow.org/cache_id";
inline constexpr const char* kKeyAnnotation = "pipelines.kubeflow.org/execution_cache_key";
inline constexpr const char* kOutputsAnnotation = "workflows.argoproj.io/outputs";
inline constexpr const char* kArgoController = "system:serviceaccount:kubeflow:argo";

// What a step's executor reports: one output parameter with `value`.
inline json stepOutputs(const std::string& value) {
  return {{"parameters", json::array({{{"name", "train-accuracy"}, {"value", value}}})}};
}

class AttackTest : public ::testing::Test {
 protected:
  void TearDown() override {
    server_.reset();
    if (!directory_.empty()) fs::remove_all(directory_);
  }

  // Starts cache-server on a fresh database with `extra` arguments (and environment), for pods of
  // tests/data/pods/<fixture>.json; waits until it is ready and, when it watches, leads.
  void startServer(const std::string& fixture, const std::vector<std::string>& extra,
                   cmd_testing::EnvironmentChanges environment = {}) {
    directory_ = fs::temp_directory_path() / ("kcache-attack-" + std::to_string(::getpid()) + "-" +
                                              std::to_string(++serverCount_));
    fs::create_directories(directory_);
    auto& postgres = test_support::PostgresServer::shared();
    dsn_ = postgres.createFreshDatabase("attack");
    const std::string database = dsn_.substr(dsn_.rfind("dbname=") + 7);
    cmd_testing::writeWebhookCertificate(directory_);
    cmd_testing::writeKubeconfig(directory_ / "kubeconfig", fake_);
    listenPort_ = test_support::findFreePort();
    httpPort_ = test_support::findFreePort();
    std::vector<std::string> arguments{"--db-host",        "127.0.0.1",
                                       "--db-port",        std::to_string(postgres.port()),
                                       "--db-user",        "postgres",
                                       "--db-name",        database,
                                       "--tls-dir",        directory_.string(),
                                       "--listen-address", "127.0.0.1",
                                       "--listen-port",    std::to_string(listenPort_),
                                       "--http-port",      std::to_string(httpPort_),
                                       "--kubeconfig",     (directory_ / "kubeconfig").string(),
                                       "--log-level",      "debug"};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    server_ = std::make_unique<cmd_testing::CacheServerProcess>(
        arguments, "kcache-0", directory_ / "server.log", std::move(environment));
    ASSERT_TRUE(waitFor(
        [&] {
          try {
            return webhook::testing::httpGet(httpPort_, "/readyz").status == 200;
          } catch (const std::exception&) {
            return false;
          }
        },
        std::chrono::seconds(60)))
        << log();
    ASSERT_TRUE(waitFor([&] { return fake_.lease("kcache", "kcache-watcher").has_value(); },
                        std::chrono::seconds(60)))
        << log();
    fixture_ = readJson(fs::path(KCACHE_TEST_DATA_DIR) / "pods" / (fixture + ".json"));
  }

  std::string log() const { return cmd_testing::readLog(directory_ / "server.log"); }

  static json readJson(const fs::path& file) {
    std::ifstream in(file);
    return json::parse(in);
  }

  // The fixture pod as Argo creates it for run `run` of the pipeline in `ns`: its own workflow,
  // node id and pod name; the same template, hence the same execution key.
  json podOfRun(int run, const std::string& ns = "team-a") const {
    json pod = fixture_;
    const std::string workflow = "pipeline-run" + std::to_string(run);
    auto& metadata = pod["metadata"];
    metadata["namespace"] = ns;
    metadata["name"] = workflow + "-train-1727472585";
    metadata["labels"][kWorkflowLabel] = workflow;
    metadata["annotations"][kNodeIdAnnotation] = workflow + "-1727472585";
    for (auto& owner : metadata["ownerReferences"]) {
      owner["name"] = workflow;
      owner["uid"] = workflowUid(run);
    }
    return pod;
  }
  static std::string workflowUid(int run) {
    return "00000000-0000-4000-8000-00000000000" + std::to_string(run);
  }
  static std::string nodeIdOf(const json& pod) {
    return pod["metadata"]["annotations"][kNodeIdAnnotation].get<std::string>();
  }

  static json reviewOf(const json& pod, const std::string& userName = kArgoController) {
    return webhook::testing::podCreateReview(pod, userName);
  }

  // A review of `pod` as kube-apiserver sends it (with apiServerCertificate_ when set).
  webhook::testing::AppliedAnswer admit(const json& pod,
                                        const std::string& userName = kArgoController) {
    webhook::testing::HttpsClient client(listenPort_, {directory_ / "cert.pem"},
                                         apiServerCertificate_);
    const auto response = client.postReview(reviewOf(pod, userName).dump());
    EXPECT_EQ(response.status, 200) << response.body;
    return webhook::testing::applyAnswer(pod, response.body);
  }

  // A review posted by anyone who can reach the webhook port, presenting `certificate` (or
  // none): the answer applied to `pod`, or nullopt when the server gave no HTTP answer.
  std::optional<webhook::testing::AppliedAnswer> postAsAnyone(
      const json& pod, const std::string& userName,
      const std::optional<webhook::testing::ClientCertificate>& certificate = std::nullopt) {
    try {
      webhook::testing::HttpsClient client(listenPort_, {directory_ / "cert.pem"}, certificate);
      const auto response = client.postReview(reviewOf(pod, userName).dump());
      if (response.status != 200) return std::nullopt;
      return webhook::testing::applyAnswer(pod, response.body);
    } catch (const std::exception&) {
      return std::nullopt;  // the handshake or the first read failed
    }
  }

  // What Argo's executor and the kubelet do for a step that ran: the final task result with
  // `outputs`, then the pod's success. `admittedPod` must exist in the fake API server.
  void runStep(const json& admittedPod, const json& outputs) {
    const std::string nodeId = nodeIdOf(admittedPod);
    const std::string ns = admittedPod["metadata"]["namespace"];
    fake_.createObject(kTaskResults,
                       {{"apiVersion", "argoproj.io/v1alpha1"},
                        {"kind", "WorkflowTaskResult"},
                        {"metadata",
                         {{"name", nodeId},
                          {"namespace", ns},
                          {"labels",
                           {{kWorkflowLabel, admittedPod["metadata"]["labels"][kWorkflowLabel]},
                            {kCompletedLabel, "true"}}}}},
                        {"outputs", outputs}});
    fake_.modifyPod(ns, admittedPod["metadata"]["name"], [](json& pod) {
      pod["status"] = json::parse(R"({"phase": "Succeeded", "containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 0,
          "startedAt": "2026-11-22T08:00:00Z", "finishedAt": "2026-11-22T08:03:20Z"}}}]})");
    });
  }

  std::string cacheIdOf(const json& pod) const {
    const auto stored = fake_.pod(pod["metadata"]["namespace"], pod["metadata"]["name"]);
    if (!stored) return "";
    return stored->at("metadata").value("labels", json::object()).value(kCacheIdLabel, "");
  }
  bool waitForCacheId(const json& pod) {
    return waitFor([&] { return !cacheIdOf(pod).empty(); }, std::chrono::seconds(60));
  }

  // A legitimate run of the step: admitted, created, run with `outputs`, labelled by the watcher.
  // Returns the pod's cache_id.
  std::string runLegitimately(int run, const json& outputs, const std::string& ns = "team-a") {
    const json pod = podOfRun(run, ns);
    const auto answer = admit(pod);
    EXPECT_TRUE(answer.hasPatch) << log();
    fake_.createPod(answer.patchedPod);
    runStep(answer.patchedPod, outputs);
    EXPECT_TRUE(waitForCacheId(pod)) << log();
    return cacheIdOf(pod);
  }

  static bool isEchoPod(const json& pod) {
    const auto& containers = pod["spec"]["containers"];
    return containers.size() == 1 && containers[0]["name"] == "main" &&
           containers[0]["command"][0] == "echo";
  }

  // The replayed outputs of a hit (the annotation kcache restores on every hit).
  static json hitOutputs(const webhook::testing::AppliedAnswer& answer) {
    return json::parse(
        answer.patchedPod["metadata"]["annotations"][kOutputsAnnotation].get<std::string>());
  }

  std::vector<store::CacheEntry> entries() const {
    store::StoreOptions options;
    options.dsn = dsn_;
    options.migrateOnOpen = false;
    store::CacheStore store(options);
    return store.listEntries({}, 0, 100);
  }

  // A counter of the server's /metrics, 0 when absent.
  double metric(const std::string& name, const std::string& labels = "") const {
    const std::string text = webhook::testing::httpGet(httpPort_, "/metrics").body;
    const std::string series = labels.empty() ? name + " " : name + "{" + labels + "} ";
    const auto at = text.find("\n" + series);
    if (at == std::string::npos) return 0;
    return std::stod(text.substr(at + 1 + series.size()));
  }

  fakekube::FakeKubeServer fake_;
  fs::path directory_;
  std::string dsn_;
  uint16_t listenPort_ = 0;
  uint16_t httpPort_ = 0;
  std::unique_ptr<cmd_testing::CacheServerProcess> server_;
  std::optional<webhook::testing::ClientCertificate> apiServerCertificate_;
  json fixture_;
  int serverCount_ = 0;
};

}  // namespace kcache::security_testing
