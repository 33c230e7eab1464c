// Recording: idempotence, newer replaces older, concurrency, hit accounting.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

constexpr int64_t kT = 1'700'000'000;

TEST_F(StoreTest, RecordingTheSameEntryAgainReturnsTheSameId) {
  const NewEntry entry = makeEntry(keyOf('a'), "team-a", kT);
  const int64_t id = store().record(CacheScope::kNamespace, entry);
  EXPECT_GT(id, 0);
  EXPECT_EQ(store().record(CacheScope::kNamespace, entry), id);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
}

TEST_F(StoreTest, NewerResultReplacesOlderButNotTheOtherWayRound) {
  const int64_t id =
      store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT, -1, "first"));
  store().noteHit(id, kT + 5);
  store().flushHits();
  EXPECT_EQ(store().record(CacheScope::kNamespace,
                           makeEntry(keyOf('a'), "team-a", kT - 100, -1, "older")),
            id);
  auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 10);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "first");
  EXPECT_EQ(hit->hitCount, 1);

  EXPECT_EQ(store().record(CacheScope::kNamespace,
                           makeEntry(keyOf('a'), "team-a", kT + 100, 60, "newer")),
            id);
  hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 100);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "newer");
  EXPECT_EQ(hit->startedAtInSec, kT + 100);
  EXPECT_EQ(hit->maxCacheStaleness, 60);
  EXPECT_EQ(hit->hitCount, 0) << "a new result starts its own hit count";
  EXPECT_FALSE(hit->lastHitAtInSec);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
}

TEST_F(StoreTest, StaleEntryDoesNotBlockRefreshing) {
  store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT, 10, "stale"));
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 1000));
  store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT + 1000, 10, "fresh"));
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 1000);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "fresh");
}

TEST_F(StoreTest, EightThreadsRecordingTheSameKeyGetOneRowAndOneId) {
  constexpr int kThreads = 8;
  StoreOptions opts = options();
  opts.poolSize = kThreads;
  CacheStore concurrent(opts);
  std::atomic<int> ready{0};
  std::vector<int64_t> ids(kThreads, 0);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      // Half the threads carry a result one second newer: it must win without a second row.
      std::string output = "r";
      output += std::to_string(i);
      const NewEntry entry = makeEntry(keyOf('c'), "team-a", kT + i % 2, -1, output);
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      try {
        ids[i] = concurrent.record(CacheScope::kNamespace, entry);
      } catch (const std::exception& error) {
        errors[i] = error.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 1u);
  EXPECT_GT(ids[0], 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
  const auto hit = concurrent.lookup(CacheScope::kNamespace, "team-a", keyOf('c'), -1, kT + 1);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->startedAtInSec, kT + 1);
}

TEST_F(StoreTest, HitsAreCountedInBatches) {
  const int64_t a = store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "ns", kT));
  const int64_t b = store().record(CacheScope::kNamespace, makeEntry(keyOf('b'), "ns", kT));
  store().noteHit(a, kT + 3);
  store().noteHit(a, kT + 9);
  store().noteHit(a, kT + 7);
  store().noteHit(b, kT + 1);
  store().flushHits();
  const auto hitA = store().lookup(CacheScope::kNamespace, "ns", keyOf('a'), -1, kT + 10);
  const auto hitB = store().lookup(CacheScope::kNamespace, "ns", keyOf('b'), -1, kT + 10);
  ASSERT_TRUE(hitA && hitB);
  EXPECT_EQ(hitA->hitCount, 3);
  EXPECT_EQ(hitA->lastHitAtInSec, kT + 9);
  EXPECT_EQ(hitB->hitCount, 1);
  EXPECT_EQ(hitB->lastHitAtInSec, kT + 1);
  // A hit for an entry that was deleted meanwhile is harmless.
  store().noteHit(a + b + 1000, kT);
  EXPECT_NO_THROW(store().flushHits());
}

TEST_F(StoreTest, HitsOfManyEntriesAreWrittenInSeveralBatches) {
  StoreOptions opts = options();
  opts.hitBatchSize = 2;
  opts.hitFlushInterval = std::chrono::hours(1);
  store_ = std::make_unique<CacheStore>(opts);
  std::vector<int64_t> ids;
  for (char c = 'a'; c < 'f'; ++c) {
    ids.push_back(store().record(CacheScope::kNamespace, makeEntry(keyOf(c), "ns", kT)));
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    for (std::size_t n = 0; n <= i; ++n) store().noteHit(ids[i], kT + static_cast<int64_t>(n));
  }
  store().flushHits();
  const pqxx::result rows =
      sql("SELECT \"HitCount\", \"LastHitAtInSec\" FROM execution_caches ORDER BY \"ID\"");
  ASSERT_EQ(rows.size(), ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(rows[i][0].as<int64_t>(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(rows[i][1].as<int64_t>(), kT + static_cast<int64_t>(i));
  }
  EXPECT_EQ(store().stats().pendingHits, 0);
}

TEST_F(StoreTest, RecordingWithoutAKeyIsAnError) {
  EXPECT_THROW(store().record(CacheScope::kNamespace, makeEntry("", "ns", kT)), StoreError);
  EXPECT_THROW(store().record(CacheScope::kCluster, makeEntry("", "", kT)), StoreError);
}

TEST_F(StoreTest, QueuedHitsAreWrittenInTheBackground) {
  const int64_t id = store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "ns", kT));
  for (int i = 0; i < 5; ++i) store().noteHit(id, kT + i);
  // The flusher runs every 50 ms here; give it up to 10 s on a loaded machine.
  int64_t written = 0;
  for (int i = 0; i < 200 && written < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    written = scalar("SELECT \"HitCount\" FROM execution_caches");
  }
  EXPECT_EQ(written, 5);
}

TEST_F(StoreTest, QueuedHitsAreWrittenWhenTheStoreCloses) {
  StoreOptions opts = options();
  opts.hitFlushInterval = std::chrono::hours(1);
  {
    CacheStore closing(opts);
    const int64_t id = closing.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "ns", kT));
    closing.noteHit(id, kT + 1);
    closing.noteHit(id, kT + 2);
    EXPECT_EQ(closing.stats().pendingHits, 2);
  }
  EXPECT_EQ(scalar("SELECT \"HitCount\" FROM execution_caches"), 2);
}

TEST_F(StoreTest, HitQueueIsBoundedAndCountsWhatItDrops) {
  StoreOptions opts = options();
  opts.hitFlushInterval = std::chrono::hours(1);
  opts.maxPendingHits = 2;
  opts.hitBatchSize = 100;
  CacheStore bounded(opts);
  bounded.noteHit(1, kT);
  bounded.noteHit(2, kT);
  bounded.noteHit(2, kT);
  bounded.noteHit(3, kT);  // a third distinct entry does not fit
  const StoreStats stats = bounded.stats();
  EXPECT_EQ(stats.pendingHits, 3);
  EXPECT_EQ(stats.droppedHits, 1);
}

}  // namespace
}  // namespace kcache::store::testing
