// RecentHitCache in front of the real CacheStore: hits served from memory within the TTL,
// misses never remembered, staleness checked on every use, scopes and namespaces kept apart.
// Time is a hand-moved clock: nothing here sleeps.
#include "store/lookup_cache.h"

#include <gtest/gtest.h>

#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

constexpr int64_t kRecordedAt = 1'700'000'000;
constexpr auto kTtl = std::chrono::milliseconds(2000);

class LookupCacheTest : public StoreTest {
 protected:
  RecentHitCache& cache(RecentHitCacheOptions options = {kTtl}) {
    if (!cache_) {
      cache_ = std::make_unique<RecentHitCache>(store(), options, [this] { return clock_; });
    }
    return *cache_;
  }
  std::optional<CacheEntry> lookUp(std::string_view ns, int64_t age, int64_t podStaleness = -1,
                                   CacheScope scope = CacheScope::kNamespace) {
    return cache().lookup(scope, ns, stepKey('a', scope, std::string(ns)), podStaleness,
                          kRecordedAt + age);
  }
  std::optional<CacheEntry> remembered(std::string_view ns, int64_t age, int64_t podStaleness = -1,
                                       CacheScope scope = CacheScope::kNamespace) {
    return cache().lookupRemembered(scope, ns, stepKey('a', scope, std::string(ns)), podStaleness,
                                    kRecordedAt + age);
  }
  void deleteAllRows() { sql("DELETE FROM execution_caches"); }

  RecentHitCache::Clock::time_point clock_{std::chrono::hours(1)};
  std::unique_ptr<RecentHitCache> cache_;
};

TEST_F(LookupCacheTest, AHitIsServedFromMemoryWithinTheTtlThenAskedAgain) {
  const auto id = store().record(
      CacheScope::kNamespace,
      makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  EXPECT_FALSE(remembered("team-a", 1).has_value());  // nothing asked yet
  ASSERT_TRUE(lookUp("team-a", 1).has_value());
  deleteAllRows();  // e.g. cachectl purge: the database no longer has it
  clock_ += kTtl - std::chrono::milliseconds(1);
  const auto fromMemory = lookUp("team-a", 2);
  ASSERT_TRUE(fromMemory.has_value());
  EXPECT_EQ(fromMemory->id, id);
  EXPECT_EQ(fromMemory->executionOutput, "{\"outputs\":1}");
  clock_ += std::chrono::milliseconds(1);  // the TTL is over: the store answers
  EXPECT_FALSE(remembered("team-a", 2).has_value());
  EXPECT_FALSE(lookUp("team-a", 2).has_value());
}

TEST_F(LookupCacheTest, AfterTheTtlANewerRecordingIsSeen) {
  store().record(CacheScope::kNamespace,
                 makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  ASSERT_EQ(lookUp("team-a", 1)->executionOutput, "{\"outputs\":1}");
  // The same pod recorded again (a fresh entry of another pod would be kept).
  NewEntry again = makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a",
                             kRecordedAt + 5, -1, "{\"outputs\":2}");
  again.podName = makeEntry("", "", kRecordedAt).podName;
  store().record(CacheScope::kNamespace, again);
  EXPECT_EQ(lookUp("team-a", 6)->executionOutput, "{\"outputs\":1}");  // within the TTL
  clock_ += kTtl;
  EXPECT_EQ(lookUp("team-a", 6)->executionOutput, "{\"outputs\":2}");
}

TEST_F(LookupCacheTest, MissesAreNeverRemembered) {
  EXPECT_FALSE(lookUp("team-a", 0).has_value());
  // The step ran and was recorded a moment later: its next admission hits, within the TTL.
  store().record(CacheScope::kNamespace,
                 makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  EXPECT_TRUE(lookUp("team-a", 1).has_value());
  EXPECT_EQ(cache().size(), 1u);
}

TEST_F(LookupCacheTest, TheEntrysOwnStalenessIsCheckedOnEveryUse) {
  store().record(CacheScope::kNamespace, makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"),
                                                   "team-a", kRecordedAt, 10));
  ASSERT_TRUE(lookUp("team-a", 5).has_value());
  EXPECT_TRUE(remembered("team-a", 10).has_value());  // boundary inclusive, as in the store
  EXPECT_FALSE(remembered("team-a", 11).has_value());
  EXPECT_FALSE(lookUp("team-a", 11).has_value());
}

TEST_F(LookupCacheTest, ThePodsStalenessIsCheckedOnEveryUse) {
  store().record(CacheScope::kNamespace,
                 makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  ASSERT_TRUE(lookUp("team-a", 30, -1).has_value());
  EXPECT_TRUE(remembered("team-a", 30, 30).has_value());
  EXPECT_FALSE(remembered("team-a", 30, 29).has_value());
  EXPECT_FALSE(lookUp("team-a", 30, 29).has_value());
  EXPECT_FALSE(remembered("team-a", 30, 0).has_value());  // reuse disabled for the pod
  EXPECT_FALSE(lookUp("team-a", 30, 0).has_value());
}

TEST_F(LookupCacheTest, ANamespaceEntryIsNeverServedToAnotherNamespaceOrTheCluster) {
  store().record(CacheScope::kNamespace,
                 makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  ASSERT_TRUE(lookUp("team-a", 1).has_value());
  EXPECT_FALSE(remembered("team-b", 1).has_value());
  EXPECT_FALSE(lookUp("team-b", 1).has_value());
  EXPECT_FALSE(remembered("team-a", 1, -1, CacheScope::kCluster).has_value());
  EXPECT_FALSE(lookUp("team-a", 1, -1, CacheScope::kCluster).has_value());
}

TEST_F(LookupCacheTest, AClusterEntryIsSharedByNamespacesButNeverServedToANamespaceLookup) {
  const auto id = store().record(
      CacheScope::kCluster,
      makeEntry(stepKey('a', CacheScope::kCluster, "team-a"), "team-a", kRecordedAt));
  ASSERT_TRUE(lookUp("team-a", 1, -1, CacheScope::kCluster).has_value());
  const auto shared = remembered("team-b", 1, -1, CacheScope::kCluster);
  ASSERT_TRUE(shared.has_value());
  EXPECT_EQ(shared->id, id);
  EXPECT_FALSE(remembered("team-a", 1).has_value());
  EXPECT_FALSE(lookUp("team-a", 1).has_value());
}

TEST_F(LookupCacheTest, ANamespaceLookupWithoutANamespaceStillFailsAsTheStoreDoes) {
  EXPECT_FALSE(remembered("", 1).has_value());
  EXPECT_THROW(lookUp("", 1), StoreError);
}

TEST_F(LookupCacheTest, AZeroTtlDisablesTheCache) {
  store().record(CacheScope::kNamespace,
                 makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  cache({std::chrono::milliseconds(0)});
  ASSERT_TRUE(lookUp("team-a", 1).has_value());
  EXPECT_FALSE(cache().enabled());
  EXPECT_EQ(cache().size(), 0u);
  deleteAllRows();
  EXPECT_FALSE(lookUp("team-a", 1).has_value());
}

TEST_F(LookupCacheTest, TheMemoryOfRememberedEntriesIsBounded) {
  constexpr std::size_t kBudget = 16 * 1024;  // 1 KiB per shard: two or three entries each
  cache({kTtl, kBudget});
  for (char c : std::string("0123456789abcdef")) {
    for (const char* ns : {"team-a", "team-b", "team-c", "team-d"}) {
      const std::string key = stepKey(c, CacheScope::kNamespace, ns);
      store().record(CacheScope::kNamespace, makeEntry(key, ns, kRecordedAt));
      ASSERT_TRUE(cache().lookup(CacheScope::kNamespace, ns, key, -1, kRecordedAt));
    }
  }
  EXPECT_GT(cache().size(), 0u);
  EXPECT_LT(cache().size(), 64u);
  EXPECT_LE(cache().bytes(), kBudget);
}

TEST_F(LookupCacheTest, AnEntryLargerThanItsShareIsNotRemembered) {
  store().record(CacheScope::kNamespace,
                 makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt,
                           -1, "{\"outputs\":\"" + std::string(4096, 'x') + "\"}"));
  cache({kTtl, 16 * 1024});
  ASSERT_TRUE(lookUp("team-a", 1).has_value());
  EXPECT_EQ(cache().size(), 0u);
  EXPECT_FALSE(remembered("team-a", 1).has_value());
}

TEST_F(LookupCacheTest, HitsAreNotedInTheStore) {
  const auto id = store().record(
      CacheScope::kNamespace,
      makeEntry(stepKey('a', CacheScope::kNamespace, "team-a"), "team-a", kRecordedAt));
  cache().noteHit(id, kRecordedAt + 7);
  store().flushHits();
  EXPECT_EQ(scalar("SELECT \"HitCount\" FROM execution_caches"), 1);
  EXPECT_EQ(scalar("SELECT \"LastHitAtInSec\" FROM execution_caches"), kRecordedAt + 7);
}

}  // namespace
}  // namespace kcache::store::testing
