// The watcher with the real CacheStore on a throwaway PostgreSQL, against the fake API server:
// what it records is what the webhook will find.
#include <gtest/gtest.h>

#include <thread>

#include "core/execution_output.h"
#include "kube/kube_client.h"
#include "store/cache_store.h"
#include "tests/support/postgres_server.h"
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
    const auto entry =
        store_->lookup(store::CacheScope::kNamespace, ns, keyFor(i), -1, nowSeconds());
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
    EXPECT_FALSE(
        store_->lookup(store::CacheScope::kNamespace, "elsewhere", keyFor(i), -1, nowSeconds())
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

}  // namespace
}  // namespace kcache::watcher
