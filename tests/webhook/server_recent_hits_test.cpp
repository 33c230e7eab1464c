// The real server over real TLS with store::RecentHitCache in front of the real CacheStore (as
// cache-server runs it): a remembered hit is answered on the I/O thread even while the store is
// failing; a miss is never remembered, so a step recorded a moment later hits at once; a dry run
// served from memory is not counted as a hit; after the TTL the store is asked again.
#include <atomic>
#include <thread>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "store/cache_store.h"
#include "store/lookup_cache.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/server_test_fixture.h"

namespace kcache::webhook {
namespace {

using nlohmann::json;
namespace contract = core::contract;
using Clock = store::RecentHitCache::Clock;

constexpr const char* kOutputs = R"({"parameters":[{"name":"train-accuracy","value":"0.93"}]})";

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Counts the hits noted on the way to the real store.
class CountingHits : public store::CacheLookup {
 public:
  explicit CountingHits(store::CacheLookup& inner) : inner_(inner) {}
  std::optional<store::CacheEntry> lookup(store::CacheScope scope, std::string_view namespaceName,
                                          std::string_view key, int64_t podStalenessSeconds,
                                          int64_t nowInSec) override {
    return inner_.lookup(scope, namespaceName, key, podStalenessSeconds, nowInSec);
  }
  std::optional<store::CacheEntry> lookupLegacy(std::string_view legacyKey,
                                                int64_t podStalenessSeconds,
                                                int64_t nowInSec) override {
    return inner_.lookupLegacy(legacyKey, podStalenessSeconds, nowInSec);
  }
  void noteHit(int64_t entryId, int64_t nowInSec) override {
    ++noted;
    inner_.noteHit(entryId, nowInSec);
  }
  std::atomic<int> noted{0};

 private:
  store::CacheLookup& inner_;
};

class RecentHitsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& postgres = test_support::PostgresServer::shared();
    if (!postgres.running()) postgres.start();
    store::StoreOptions options;
    options.dsn = postgres.createFreshDatabase("recent_hits");
    options.lookupTimeout = std::chrono::milliseconds(500);
    cacheStore_ = std::make_unique<store::CacheStore>(options);
    counting_ = std::make_unique<CountingHits>(*cacheStore_);
    faulty_ = std::make_unique<testing::FaultyLookup>(*counting_);
    recentHits_ = std::make_unique<store::RecentHitCache>(
        *faulty_, store::RecentHitCacheOptions{std::chrono::milliseconds(2000)},
        [this] { return now_.load(); });
    server_ = std::make_unique<testing::RunningServer>(*recentHits_);
    client_ = server_->client();
    // Ready means the store answered the readiness probe, which then stops asking it: from here
    // on every store call counted below comes from an admission.
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (testing::httpGet(server_->server().httpPort(), "/readyz").status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "the server never became ready";
  }

  void record(const json& review) {
    store::NewEntry entry;
    const auto argoTemplate =
        core::findArgoTemplate(review.at("request").at("object"))->argoTemplate;
    entry.namespaceName = review["request"]["namespace"];
    entry.key =
        testing::keyInScope(argoTemplate, store::CacheScope::kNamespace, entry.namespaceName);
    entry.podName = "my-pipeline-x7k2p-train-earlier";
    entry.executionTemplate = argoTemplate;
    entry.executionOutput = core::encodeExecutionOutput({kOutputs, "42"});
    entry.recordedAtInSec = nowSeconds() - 5;
    cacheStore_->record(store::CacheScope::kNamespace, entry);
  }

  bool admitHits(json review, bool dryRun = false) {
    review["request"]["dryRun"] = dryRun;
    const auto response = client_->postReview(review.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    const auto applied = testing::applyAnswer(review["request"]["object"], response.body);
    EXPECT_TRUE(applied.allowed);
    return applied.hasPatch && applied.patchedPod["metadata"]["labels"].value(
                                   std::string(contract::kReusedFromCacheLabel), "") == "true";
  }

  std::atomic<Clock::time_point> now_{Clock::now()};
  std::unique_ptr<store::CacheStore> cacheStore_;
  std::unique_ptr<CountingHits> counting_;
  std::unique_ptr<testing::FaultyLookup> faulty_;
  std::unique_ptr<store::RecentHitCache> recentHits_;
  std::unique_ptr<testing::RunningServer> server_;
  std::unique_ptr<testing::HttpsClient> client_;
};

TEST_F(RecentHitsServerTest, MissesAreNotRememberedSoARecordedStepHitsAtOnce) {
  const json review = testing::fixtureJson("argo-3.5-v1.json");
  const int callsBefore = faulty_->calls();  // the readiness probe asks the store too
  EXPECT_FALSE(admitHits(review));
  record(review);
  EXPECT_TRUE(admitHits(review));
  EXPECT_EQ(faulty_->calls() - callsBefore, 2);  // both asked the store
}

TEST_F(RecentHitsServerTest, RememberedHitIsAnsweredWhileTheStoreFailsUntilTheTtlEnds) {
  const json review = testing::fixtureJson("argo-3.5-v1.json");
  record(review);
  ASSERT_TRUE(admitHits(review));
  const int callsAfterHit = faulty_->calls();  // the readiness probe asks the store too
  EXPECT_EQ(recentHits_->size(), 1u);

  faulty_->failWith("database is down");
  EXPECT_TRUE(admitHits(review));
  EXPECT_EQ(faulty_->calls(), callsAfterHit);  // answered from memory

  // A dry run served from memory leaves no trace: the hit counter is not noted.
  const int notedBefore = counting_->noted.load();
  EXPECT_TRUE(admitHits(review, true));
  EXPECT_EQ(counting_->noted.load(), notedBefore);

  // Past the TTL the store is asked again; it is down, so the pod is let through untouched.
  now_.store(now_.load() + std::chrono::milliseconds(2001));
  EXPECT_FALSE(admitHits(review));
  EXPECT_EQ(faulty_->calls(), callsAfterHit + 1);
  faulty_->heal();
  EXPECT_TRUE(admitHits(review));
}

}  // namespace
}  // namespace kcache::webhook
