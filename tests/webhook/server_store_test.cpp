// The real server over real TLS with the real CacheStore on a throwaway PostgreSQL: a hit after a
// real record, isolation by namespace and cluster scope, and a PostgreSQL outage (every review
// allowed without a patch) followed by recovery (hits come back).
#include <thread>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "store/cache_store.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/server_test_fixture.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
namespace contract = core::contract;

constexpr const char* kOutputs =
    R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],"exitCode":"0"})";

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string templateOf(const json& review) {
  return core::findArgoTemplate(review.at("request").at("object"))->argoTemplate;
}

json inNamespace(json review, const std::string& namespaceName) {
  review["request"]["namespace"] = namespaceName;
  review["request"]["object"]["metadata"]["namespace"] = namespaceName;
  return review;
}

class ServerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& postgres = test_support::PostgresServer::shared();
    if (!postgres.running()) postgres.start();
    store::StoreOptions options;
    options.dsn = postgres.createFreshDatabase("webhook");
    options.lookupTimeout = std::chrono::milliseconds(500);
    options.reconnectBackoffMax = std::chrono::milliseconds(200);
    cacheStore = std::make_unique<store::CacheStore>(options);
  }

  int64_t record(store::CacheScope scope, const json& review, const std::string& namespaceName) {
    store::NewEntry entry;
    const auto argoTemplate = templateOf(review);
    entry.key = testing::keyInScope(argoTemplate, scope, namespaceName);
    entry.namespaceName = namespaceName;
    entry.podName = "my-pipeline-x7k2p-train-earlier";
    entry.executionTemplate = argoTemplate;
    entry.executionOutput = core::encodeExecutionOutput({kOutputs, "42"});
    entry.runDurationSeconds = 120;
    entry.recordedAtInSec = nowSeconds() - 5;
    return cacheStore->record(scope, entry);
  }

  static std::string cacheIdOf(const testing::AppliedAnswer& applied) {
    if (!applied.hasPatch) return "<no patch>";
    return applied.patchedPod["metadata"]["labels"][std::string(contract::kCacheIdLabel)];
  }

  testing::AppliedAnswer admit(testing::HttpsClient& client, const json& review) {
    const auto response = client.postReview(review.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    auto applied = testing::applyAnswer(review["request"]["object"], response.body);
    EXPECT_TRUE(applied.allowed);
    return applied;
  }

  std::unique_ptr<store::CacheStore> cacheStore;
};

TEST_F(ServerStoreTest, HitAfterARealRecordAndIsolationByNamespace) {
  testing::RunningServer server(*cacheStore);
  auto client = server.client();
  const auto review = testing::fixtureJson("argo-3.5-v1.json");

  EXPECT_EQ(cacheIdOf(admit(*client, review)), "") << "nothing recorded yet: a miss";
  const auto id = record(store::CacheScope::kNamespace, review, "team-a");
  const auto hit = admit(*client, review);
  ASSERT_EQ(cacheIdOf(hit), std::to_string(id));
  EXPECT_EQ(
      hit.patchedPod["metadata"]["annotations"][std::string(contract::kArgoOutputsAnnotation)],
      kOutputs);
  EXPECT_EQ(hit.patchedPod["spec"]["containers"].size(), 1u);

  EXPECT_EQ(cacheIdOf(admit(*client, inNamespace(review, "team-b"))), "")
      << "another namespace never receives team-a's outputs";

  // Hits are counted off the admission path.
  cacheStore->flushHits();
  EXPECT_EQ(cacheStore->stats().totalHits, 1);
}

TEST_F(ServerStoreTest, ClusterScopeSharesAcrossNamespaces) {
  AdmissionConfig config;
  config.scope = store::CacheScope::kCluster;
  testing::RunningServer server(*cacheStore, config);
  auto client = server.client();
  const auto review = testing::fixtureJson("argo-3.3-v1beta1.json");
  const auto id = record(store::CacheScope::kCluster, review, "team-a");
  EXPECT_EQ(cacheIdOf(admit(*client, inNamespace(review, "team-b"))), std::to_string(id));
}

TEST_F(ServerStoreTest, PostgresOutageAllowsEverythingThenHitsComeBack) {
  testing::RunningServer server(*cacheStore);
  auto client = server.client();
  const auto review = testing::fixtureJson("argo-3.6-init-only-v1.json");
  const auto id = record(store::CacheScope::kNamespace, review, "team-a");
  ASSERT_EQ(cacheIdOf(admit(*client, review)), std::to_string(id));

  auto& postgres = test_support::PostgresServer::shared();
  postgres.stop();
  for (int i = 0; i < 5; ++i) {
    const auto applied = admit(*client, review);
    EXPECT_FALSE(applied.hasPatch) << "store down: allowed, untouched";
  }
  EXPECT_EQ(server.counter("kcache_admission_errors_total", {{"reason", "store_unavailable"}}), 5);

  postgres.start();
  std::string cacheId;
  for (int i = 0; i < 300 && cacheId != std::to_string(id); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cacheId = cacheIdOf(admit(*client, review));
  }
  EXPECT_EQ(cacheId, std::to_string(id)) << "hits come back once PostgreSQL is up again";
}

}  // namespace
}  // namespace kcache::webhook
