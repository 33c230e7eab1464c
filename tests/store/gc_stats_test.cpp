// Garbage collection and statistics.
#include <gtest/gtest.h>

#include <set>

#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

constexpr int64_t kT = 1'700'000'000;

std::set<std::string> remainingOutputs(StoreTest& test, pqxx::result rows) {
  (void)test;
  std::set<std::string> outputs;
  for (const auto& row : rows) outputs.insert(row[0].as<std::string>());
  return outputs;
}

TEST_F(StoreTest, GcDeletesEntriesOlderThanTheMaximumInBoundedBatches) {
  for (char c = 'a'; c < 'f'; ++c) {
    store().record(CacheScope::kNamespace, makeEntry(keyOf(c), "ns", kT - 101, -1, "old"));
  }
  store().record(CacheScope::kNamespace, makeEntry(keyOf('x'), "ns", kT - 100, -1, "boundary"));
  store().record(CacheScope::kNamespace, makeEntry(keyOf('y'), "ns", kT, -1, "new"));
  GcOptions gc;
  gc.nowInSec = kT;
  gc.maxStalenessSeconds = 100;
  gc.batchSize = 2;
  const GcResult result = store().gc(gc);
  EXPECT_EQ(result.expiredDeleted, 5);
  EXPECT_EQ(result.evictedDeleted, 0);
  EXPECT_EQ(result.batches, 3);  // 2 + 2 + 1
  EXPECT_EQ(remainingOutputs(*this, sql("SELECT \"ExecutionOutput\" FROM execution_caches")),
            (std::set<std::string>{"boundary", "new"}));
}

TEST_F(StoreTest, GcWithoutLimitsDeletesNothing) {
  store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "ns", 1));
  GcOptions gc;
  gc.nowInSec = kT;
  const GcResult result = store().gc(gc);
  EXPECT_EQ(result.expiredDeleted + result.evictedDeleted, 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
}

TEST_F(StoreTest, GcEvictsTheLeastRecentlyHitBeyondMaxEntries) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    std::string output = "e";
    output += std::to_string(i);  // (operator+ here trips a GCC 12 -Wrestrict false positive)
    ids.push_back(
        store().record(CacheScope::kNamespace,
                       makeEntry(keyOf(static_cast<char>('a' + i)), "ns", kT + i, -1, output)));
  }
  store().noteHit(ids[0], kT + 10);
  store().noteHit(ids[1], kT + 20);
  store().flushHits();
  GcOptions gc;
  gc.nowInSec = kT + 30;
  gc.maxEntries = 3;
  gc.batchSize = 1;
  const GcResult result = store().gc(gc);
  EXPECT_EQ(result.evictedDeleted, 2);
  EXPECT_EQ(result.batches, 2);
  // e2 and e3 were never hit and are older than e4; e0 and e1 were hit recently.
  EXPECT_EQ(remainingOutputs(*this, sql("SELECT \"ExecutionOutput\" FROM execution_caches")),
            (std::set<std::string>{"e0", "e1", "e4"}));
}

TEST_F(StoreTest, StatsSummariseEntriesHitsAndSavings) {
  StoreOptions opts = options();
  opts.hitFlushInterval = std::chrono::hours(1);  // only the explicit flush writes hits
  store_ = std::make_unique<CacheStore>(opts);
  const int64_t hitOften =
      store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT));
  store().record(CacheScope::kNamespace, makeEntry(keyOf('b'), "team-a", kT + 5));
  const int64_t hitOnce =
      store().record(CacheScope::kNamespace, makeEntry(keyOf('c'), "team-b", kT - 7));
  sql("INSERT INTO execution_caches (\"ExecutionCacheKey\", \"ExecutionTemplate\", "
      "\"ExecutionOutput\", \"MaxCacheStaleness\", \"StartedAtInSec\", \"EndedAtInSec\") "
      "VALUES ('legacy', '{}', '{}', -1, 5, 5)");
  for (int i = 0; i < 3; ++i) store().noteHit(hitOften, kT + 10);
  store().noteHit(hitOnce, kT + 10);
  store().flushHits();
  store().noteHit(hitOnce, kT + 11);  // still queued

  const StoreStats stats = store().stats();
  EXPECT_EQ(stats.entries, 4);
  EXPECT_EQ(stats.totalHits, 4);
  EXPECT_EQ(stats.computeSecondsSaved, 4 * 42);  // every recorded run took 42 s, legacy 0
  EXPECT_EQ(stats.oldestEntryAtInSec, 5);
  EXPECT_EQ(stats.newestEntryAtInSec, kT + 5);
  EXPECT_GT(stats.tableBytes, 0);
  EXPECT_EQ(stats.pendingHits, 1);
  ASSERT_EQ(stats.perNamespace.size(), 3u);
  EXPECT_EQ(stats.perNamespace[0].namespaceName, "");
  EXPECT_EQ(stats.perNamespace[0].entries, 1);
  EXPECT_EQ(stats.perNamespace[1].namespaceName, "team-a");
  EXPECT_EQ(stats.perNamespace[1].entries, 2);
  EXPECT_EQ(stats.perNamespace[1].hits, 3);
  EXPECT_EQ(stats.perNamespace[2].namespaceName, "team-b");
  EXPECT_EQ(stats.perNamespace[2].hits, 1);
}

TEST_F(StoreTest, StatsOfAnEmptyStore) {
  const StoreStats stats = store().stats();
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.totalHits, 0);
  EXPECT_FALSE(stats.oldestEntryAtInSec);
  EXPECT_FALSE(stats.newestEntryAtInSec);
  EXPECT_TRUE(stats.perNamespace.empty());
}

}  // namespace
}  // namespace kcache::store::testing
