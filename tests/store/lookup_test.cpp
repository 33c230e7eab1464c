// Lookup rules: staleness at the boundary second, namespace isolation, legacy rows.
#include <gtest/gtest.h>

#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

constexpr int64_t kRecordedAt = 1'700'000'000;

class LookupTest : public StoreTest {
 protected:
  // Records one entry in namespace "team-a" with the given recorded staleness.
  void recordWith(int64_t entryStaleness) {
    store().record(CacheScope::kNamespace,
                   makeEntry(keyOf('a'), "team-a", kRecordedAt, entryStaleness));
  }
  bool hitsAt(int64_t age, int64_t podStaleness) {
    return store()
        .lookup(CacheScope::kNamespace, "team-a", keyOf('a'), podStaleness, kRecordedAt + age)
        .has_value();
  }
};

TEST_F(LookupTest, PodStalenessIsInclusiveAtTheBoundarySecond) {
  recordWith(-1);
  EXPECT_TRUE(hitsAt(0, 10));
  EXPECT_TRUE(hitsAt(10, 10));
  EXPECT_FALSE(hitsAt(11, 10));
}

TEST_F(LookupTest, EntryStalenessIsInclusiveAtTheBoundarySecond) {
  recordWith(10);
  EXPECT_TRUE(hitsAt(10, -1));
  EXPECT_FALSE(hitsAt(11, -1));
}

TEST_F(LookupTest, TheStricterOfPodAndEntryStalenessApplies) {
  recordWith(100);
  EXPECT_TRUE(hitsAt(20, 20));
  EXPECT_FALSE(hitsAt(21, 20));  // the pod's limit
  EXPECT_TRUE(hitsAt(100, 500));
  EXPECT_FALSE(hitsAt(101, 500));  // the entry's own limit
}

TEST_F(LookupTest, NegativeStalenessMeansUnlimited) {
  recordWith(-1);
  EXPECT_TRUE(hitsAt(100LL * 365 * 86400, -1));
  EXPECT_TRUE(hitsAt(100LL * 365 * 86400, -86400));
}

TEST_F(LookupTest, PodStalenessZeroNeverHits) {
  recordWith(-1);
  EXPECT_FALSE(hitsAt(0, 0));
  EXPECT_TRUE(hitsAt(0, 1));
}

TEST_F(LookupTest, EntryRecordedWithZeroStalenessOnlyHitsInItsOwnSecond) {
  recordWith(0);
  EXPECT_TRUE(hitsAt(0, -1));
  EXPECT_FALSE(hitsAt(1, -1));
}

TEST_F(LookupTest, LookupReturnsEverythingThatWasRecorded) {
  NewEntry entry = makeEntry(keyOf('b'), "team-a", kRecordedAt, 3600, "{\"out\":\"x\"}");
  entry.podName = "wf-123-456";
  entry.runDurationSeconds = 77;
  const int64_t id = store().record(CacheScope::kNamespace, entry);
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('b'), -1, kRecordedAt);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->id, id);
  EXPECT_EQ(hit->key, keyOf('b'));
  EXPECT_EQ(hit->namespaceName, "team-a");
  EXPECT_EQ(hit->podName, "wf-123-456");
  EXPECT_EQ(hit->executionTemplate, entry.executionTemplate);
  EXPECT_EQ(hit->executionOutput, "{\"out\":\"x\"}");
  EXPECT_EQ(hit->maxCacheStaleness, 3600);
  EXPECT_EQ(hit->startedAtInSec, kRecordedAt);
  EXPECT_EQ(hit->endedAtInSec, kRecordedAt);
  EXPECT_EQ(hit->runDurationSeconds, 77);
  EXPECT_EQ(hit->hitCount, 0);
  EXPECT_FALSE(hit->lastHitAtInSec);
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-a", keyOf('c'), -1, kRecordedAt));
}

TEST_F(LookupTest, NamespacesAreIsolated) {
  const auto keyIn = [](const std::string& ns) { return stepKey('a', CacheScope::kNamespace, ns); };
  store().record(CacheScope::kNamespace,
                 makeEntry(keyIn("team-a"), "team-a", kRecordedAt, -1, "A"));
  store().record(CacheScope::kNamespace,
                 makeEntry(keyIn("team-b"), "team-b", kRecordedAt, -1, "B"));
  const auto a = store().lookup(CacheScope::kNamespace, "team-a", keyIn("team-a"), -1, kRecordedAt);
  const auto b = store().lookup(CacheScope::kNamespace, "team-b", keyIn("team-b"), -1, kRecordedAt);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->executionOutput, "A");
  EXPECT_EQ(b->executionOutput, "B");
  EXPECT_NE(a->id, b->id);
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-c", keyIn("team-c"), -1, kRecordedAt));
  // Another namespace's key is not found from a namespace it is not bound to.
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-c", keyIn("team-a"), -1, kRecordedAt));
  // Namespace-owned entries are not cluster-wide entries: the cluster key is another key.
  EXPECT_FALSE(store().lookup(CacheScope::kCluster, "", stepKey('a', CacheScope::kCluster, ""), -1,
                              kRecordedAt));
}

TEST_F(LookupTest, ClusterScopeSharesOneEntryAcrossNamespaces) {
  const std::string key = stepKey('a', CacheScope::kCluster, "");
  const int64_t id = store().record(CacheScope::kCluster, makeEntry(key, "team-a", kRecordedAt));
  EXPECT_EQ(store().record(CacheScope::kCluster, makeEntry(key, "team-b", kRecordedAt)), id);
  const auto hit = store().lookup(CacheScope::kCluster, "team-c", key, -1, kRecordedAt);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->id, id);
  EXPECT_EQ(hit->namespaceName, "team-a");  // who recorded it, for the record
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-a",
                              stepKey('a', CacheScope::kNamespace, "team-a"), -1, kRecordedAt));
}

TEST_F(LookupTest, LegacyRowsMatchOnlyInClusterScope) {
  store();
  sql("INSERT INTO execution_caches (\"ExecutionCacheKey\", \"ExecutionTemplate\", "
      "\"ExecutionOutput\", \"MaxCacheStaleness\", \"StartedAtInSec\", \"EndedAtInSec\") VALUES "
      "('" +
      keyOf('l') + "', '{}', 'legacy', -1, " + std::to_string(kRecordedAt) + ", " +
      std::to_string(kRecordedAt) + ")");
  const auto hit = store().lookup(CacheScope::kCluster, "team-a", keyOf('l'), -1, kRecordedAt);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "legacy");
  EXPECT_EQ(hit->namespaceName, "");
  EXPECT_EQ(hit->podName, "");
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-a", keyOf('l'), -1, kRecordedAt));
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "default", keyOf('l'), -1, kRecordedAt));
}

TEST_F(LookupTest, NamespaceScopeWithoutANamespaceIsAnError) {
  EXPECT_THROW(store().lookup(CacheScope::kNamespace, "", keyOf('a'), -1, kRecordedAt), StoreError);
  EXPECT_THROW(store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "", kRecordedAt)),
               StoreError);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 0);
}

TEST_F(LookupTest, KeysAreParametersNotSql) {
  const std::string hostile = "'; DROP TABLE execution_caches; --";
  store().record(CacheScope::kNamespace, makeEntry(hostile, "team-'a", kRecordedAt));
  EXPECT_TRUE(store().lookup(CacheScope::kNamespace, "team-'a", hostile, -1, kRecordedAt));
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
}

}  // namespace
}  // namespace kcache::store::testing
