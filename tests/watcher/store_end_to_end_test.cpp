// The watcher with the real CacheStore on a throwaway PostgreSQL, against the fake API server:
// what it records is what the webhook will find.
#include <gtest/gtest.h>

#include <thread>

#include "core/execution_output.h"
#include "kube/kube_client.h"
#include "store/cache_store.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_stamp_keys.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/watcher_service.h"

namespace kcache::watcher {
namespace {

using fakekube::FakeKubeServer;
using fakekube::makeTaggedPod;
using fakekube::markSucceeded;
using std::chrono::milliseconds;
using testing::configFor;
using testing::keyFor;
using testing::numbered;
using testing::waitFor;

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class WatcherStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& postgres = test_support::PostgresServer::shared();
    if (!postgres.running()) postgres.start();
    store::StoreOptions options;
    options.dsn = postgres.createFreshDatabase("watcher");
    store_ = std::make_unique<store::CacheStore>(options);
  }

  std::unique_ptr<WatcherService> makeService() {
    WatcherConfig config;
    config.informer.backoff = BackoffConfig{milliseconds(20), milliseconds(300)};
    config.recorder.admissionStamps = kcache::testing::testStampKeys();
    config.recorder.retryBackoff = BackoffConfig{milliseconds(20), milliseconds(300)};
    config.recorder.staleness = core::StalenessPolicy(std::nullopt, "P7D");
    config.leaderElection = false;
    config.gcInterval = milliseconds(0);
    return std::make_unique<WatcherService>(kube::makeKubeClient(configFor(server_)), config,
                                            *store_, std::function<void()>{}, registry_);
  }

  std::string cacheIdOf(const std::string& ns, const std::string& name) {
    const auto pod = server_.pod(ns, name);
    return pod ? pod->at("metadata").at("labels").value("pipelines.kubeflow.org/cache_id", "") : "";
  }

  FakeKubeServer server_;
  core::MetricsRegistry registry_;
  std::unique_ptr<store::CacheStore> store_;
};

TEST_F(WatcherStoreTest, RecordedStepsAreFoundByLookupAndLabelledWithTheirIds) {
  constexpr int kPods = 60;
  auto service = makeService();
  service->start();
  for (int i = 0; i < kPods; ++i) {
    auto pod = makeTaggedPod(numbered("team-", i % 2), numbered("step-", i), keyFor(i));
    pod["metadata"]["annotations"]["pipelines.kubeflow.org/max_cache_staleness"] = "P30D";
    pod["metadata"]["labels"]["pipelines.kubeflow.org/metadata_execution_id"] = numbered("", i);
    fakekube::stampAsAdmitted(pod, 7 * 86400);  // P30D capped by MAXIMUM_CACHE_STALENESS
    markSucceeded(pod, R"({"exitCode":"0"})", "2026-01-01T00:00:00Z", "2026-01-01T00:00:42Z");
    server_.createPod(pod);
    if (i == kPods / 2) server_.dropWatchStreams();
  }
  ASSERT_TRUE(waitFor([&] {
    for (int i = 0; i < kPods; ++i) {
      if (cacheIdOf(numbered("team-", i % 2), numbered("step-", i)).empty()) return false;
    }
    return true;
  }));
  service->stop();

  for (int i = 0; i < kPods; ++i) {
    const std::string ns = numbered("team-", i % 2);
    const auto entry = store_->lookup(store::CacheScope::kNamespace, ns,
                                      fakekube::taggedPodKey(ns, keyFor(i)), -1, nowSeconds());
    ASSERT_TRUE(entry.has_value()) << i;
    EXPECT_EQ(std::to_string(entry->id), cacheIdOf(ns, numbered("step-", i)));
    EXPECT_EQ(entry->podName, numbered("step-", i));
    EXPECT_EQ(entry->namespaceName, ns);
    EXPECT_EQ(entry->runDurationSeconds, 42);
    EXPECT_EQ(entry->maxCacheStaleness, 7 * 86400);  // P30D capped by MAXIMUM_CACHE_STALENESS
    const auto outputs = core::decodeExecutionOutput(entry->executionOutput);
    ASSERT_TRUE(outputs.has_value());
    EXPECT_EQ(outputs->argoOutputs, R"({"exitCode":"0"})");
    EXPECT_EQ(outputs->metadataExecutionId, numbered("", i));
    // Namespace scope: another namespace does not see it.
    EXPECT_FALSE(store_
                     ->lookup(store::CacheScope::kNamespace, "elsewhere",
                              fakekube::taggedPodKey(ns, keyFor(i)), -1, nowSeconds())
                     .has_value());
  }
  EXPECT_EQ(store_->countEntries(store::EntryFilter{}), kPods);

  // A restarted watcher finds every pod labelled and writes nothing.
  auto again = makeService();
  again->start();
  ASSERT_TRUE(waitFor([&] { return again->completedLists() >= 1; }));
  again->stop();
  EXPECT_EQ(store_->countEntries(store::EntryFilter{}), kPods);
  EXPECT_EQ(registry_.counter("kcache_watcher_entries_recorded_total", "").value(), kPods);
}

// The same step recorded on an old Argo line (outputs in the pod annotation) and on a modern one
// (outputs in the WorkflowTaskResult, exitCode added by the controller) gives entries of one
// shape, byte for byte: an entry recorded under one line serves every other.
TEST_F(WatcherStoreTest, EntriesFromTaskResultsAndAnnotationsHaveTheSameShape) {
  const nlohmann::json outputs =
      R"({"parameters":[{"name":"model","value":"s3://b/<m>","valueFrom":{"path":"/tmp/m"}}],"artifacts":[{"name":"model","path":"/tmp/m","s3":{"key":"wf/m.tgz"}}],"result":"ok"})"_json;
  auto service = makeService();
  service->start();
  ASSERT_TRUE(waitFor(
      [&] { return service->completedLists() >= 1 && service->completedTaskResultLists() >= 1; }));
  auto describe = [&](nlohmann::json& pod) {
    pod["metadata"]["labels"]["pipelines.kubeflow.org/metadata_execution_id"] = "9";
    pod["metadata"]["annotations"]["pipelines.kubeflow.org/max_cache_staleness"] = "P1D";
    fakekube::stampAsAdmitted(pod, 86400);
  };
  // Argo 3.3 without task result RBAC: the executor fell back to the annotation.
  auto old = makeTaggedPod("old-argo", "step", keyFor(5));
  describe(old);
  markSucceeded(old, outputs.dump(), "2026-01-01T00:00:00Z", "2026-01-01T00:00:42Z");
  server_.createPod(old);
  // Argo 3.6+: a task result, and a pod with the node id, no annotation, no completed label.
  nlohmann::json taskResult;
  taskResult["metadata"] = {{"name", "wf-7-123"},
                            {"namespace", "new-argo"},
                            {"labels",
                             {{"workflows.argoproj.io/workflow", "wf-7"},
                              {"workflows.argoproj.io/report-outputs-completed", "true"}}}};
  taskResult["outputs"] = outputs;
  taskResult["outputs"]["exitCode"] = "0";
  server_.createObject("workflowtaskresults", taskResult);
  auto modern = makeTaggedPod("new-argo", "step", keyFor(5));
  describe(modern);
  modern["metadata"]["annotations"]["workflows.argoproj.io/node-id"] = "wf-7-123";
  markSucceeded(modern, "", "2026-01-01T00:00:00Z", "2026-01-01T00:00:42Z");
  modern["metadata"]["annotations"].erase("workflows.argoproj.io/outputs");
  modern["metadata"]["labels"].erase("workflows.argoproj.io/completed");
  server_.createPod(modern);
  ASSERT_TRUE(waitFor([&] {
    return !cacheIdOf("old-argo", "step").empty() && !cacheIdOf("new-argo", "step").empty();
  }));
  service->stop();

  const auto fromAnnotation =
      store_->lookup(store::CacheScope::kNamespace, "old-argo",
                     fakekube::taggedPodKey("old-argo", keyFor(5)), -1, nowSeconds());
  const auto fromTaskResult =
      store_->lookup(store::CacheScope::kNamespace, "new-argo",
                     fakekube::taggedPodKey("new-argo", keyFor(5)), -1, nowSeconds());
  ASSERT_TRUE(fromAnnotation && fromTaskResult);
  EXPECT_EQ(fromTaskResult->executionOutput, fromAnnotation->executionOutput);
  EXPECT_EQ(fromTaskResult->executionTemplate, fromAnnotation->executionTemplate);
  EXPECT_EQ(fromTaskResult->maxCacheStaleness, fromAnnotation->maxCacheStaleness);
  EXPECT_EQ(fromTaskResult->runDurationSeconds, fromAnnotation->runDurationSeconds);
  EXPECT_EQ(
      fromTaskResult->executionOutput,
      R"({"pipelines.kubeflow.org/metadata_execution_id":"9","workflows.argoproj.io/outputs":"{\"artifacts\":[{\"name\":\"model\",\"path\":\"/tmp/m\",\"s3\":{\"key\":\"wf/m.tgz\"}}],\"parameters\":[{\"name\":\"model\",\"value\":\"s3://b/\u003cm\u003e\",\"valueFrom\":{\"path\":\"/tmp/m\"}}],\"result\":\"ok\"}"})");
  EXPECT_EQ(registry_.counter("kcache_watcher_steps_planned_total", "", {{"source", "taskresult"}})
                .value(),
            1);
  EXPECT_EQ(registry_.counter("kcache_watcher_steps_planned_total", "", {{"source", "annotation"}})
                .value(),
            1);
}

}  // namespace
}  // namespace kcache::watcher
