// Recording: idempotence, first fresh writer wins, concurrency, hit accounting.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "core/execution_output.h"
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

TEST_F(StoreTest, AFreshEntryIsKeptAgainstARecordOfAnotherPod) {
  // First fresh writer wins: a repeated (or forged) record of a fresh step changes nothing, and
  // the caller learns which entry stays.
  const RecordResult first =
      store().recordEntry(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT, -1, "first"));
  EXPECT_EQ(first.outcome, RecordOutcome::kInserted);
  store().noteHit(first.entryId, kT + 5);
  store().flushHits();
  const RecordResult later = store().recordEntry(
      CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT + 100, 60, "later"));
  EXPECT_EQ(later.outcome, RecordOutcome::kKept);
  EXPECT_EQ(later.entryId, first.entryId);
  EXPECT_EQ(store()
                .recordEntry(CacheScope::kNamespace,
                             makeEntry(keyOf('a'), "team-a", kT - 100, -1, "older"))
                .outcome,
            RecordOutcome::kKept);
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 100);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "first");
  EXPECT_EQ(hit->startedAtInSec, kT);
  EXPECT_EQ(hit->hitCount, 1) << "a kept entry keeps its hit count";
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
}

TEST_F(StoreTest, ANewerRecordOfTheSamePodReplacesItsEntry) {
  NewEntry entry = makeEntry(keyOf('a'), "team-a", kT, -1, "first");
  const int64_t id = store().record(CacheScope::kNamespace, entry);
  store().noteHit(id, kT + 5);
  store().flushHits();
  entry.recordedAtInSec = kT + 100;
  entry.executionOutput = "again";
  entry.maxCacheStaleness = 60;
  const RecordResult again = store().recordEntry(CacheScope::kNamespace, entry);
  EXPECT_EQ(again.outcome, RecordOutcome::kReplaced);
  EXPECT_EQ(again.entryId, id);
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 100);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "again");
  EXPECT_EQ(hit->startedAtInSec, kT + 100);
  EXPECT_EQ(hit->maxCacheStaleness, 60);
  EXPECT_EQ(hit->hitCount, 0) << "a new result starts its own hit count";
  EXPECT_FALSE(hit->lastHitAtInSec);
  // The same pod in another namespace is another pod.
  NewEntry elsewhere = makeEntry(keyOf('b'), "team-a", kT, -1, "mine");
  store().record(CacheScope::kCluster, elsewhere);
  elsewhere.namespaceName = "team-b";
  elsewhere.recordedAtInSec = kT + 1;
  EXPECT_EQ(store().recordEntry(CacheScope::kCluster, elsewhere).outcome, RecordOutcome::kKept);
}

TEST_F(StoreTest, StaleEntryDoesNotBlockRefreshing) {
  store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT, 10, "stale"));
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 1000));
  EXPECT_EQ(store()
                .recordEntry(CacheScope::kNamespace,
                             makeEntry(keyOf('a'), "team-a", kT + 1000, 10, "fresh"))
                .outcome,
            RecordOutcome::kReplaced);
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 1000);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "fresh");
}

TEST_F(StoreTest, AnEntryThatCannotBeReplayedGivesWayToOneThatCan) {
  // Recorded without outputs (its task result never came): lookups treat it as a miss, so the
  // step runs again, and its record must be able to take the key.
  const std::string none = core::encodeExecutionOutput({"", "1"});
  const std::string outputs = core::encodeExecutionOutput({R"({"parameters":[]})", "2"});
  const int64_t id =
      store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT, -1, none));
  const RecordResult good = store().recordEntry(
      CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT + 5, -1, outputs));
  EXPECT_EQ(good.outcome, RecordOutcome::kReplaced);
  EXPECT_EQ(good.entryId, id);
  // Never the other way round, nor by an older record.
  EXPECT_EQ(
      store()
          .recordEntry(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT + 10, -1, none))
          .outcome,
      RecordOutcome::kKept);
  store().record(CacheScope::kNamespace, makeEntry(keyOf('b'), "team-a", kT, -1, "not json"));
  EXPECT_EQ(
      store()
          .recordEntry(CacheScope::kNamespace, makeEntry(keyOf('b'), "team-a", kT - 1, -1, outputs))
          .outcome,
      RecordOutcome::kKept);
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT + 10);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, outputs);
  EXPECT_EQ(hit->startedAtInSec, kT + 5);
}

TEST_F(StoreTest, FreshnessIsJudgedAtTheEntrysOwnStalenessBoundaryInclusive) {
  store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT, 10, "first"));
  EXPECT_EQ(store()
                .recordEntry(CacheScope::kNamespace,
                             makeEntry(keyOf('a'), "team-a", kT + 10, 10, "at the boundary"))
                .outcome,
            RecordOutcome::kKept);
  EXPECT_EQ(store()
                .recordEntry(CacheScope::kNamespace,
                             makeEntry(keyOf('a'), "team-a", kT + 11, 10, "just after"))
                .outcome,
            RecordOutcome::kReplaced);
}

TEST_F(StoreTest, TheMaximumStalenessCapsHowLongAnEntryHoldsItsKey) {
  // An entry recorded with no limit (or a forged P1000Y) is replaceable once older than
  // MAXIMUM_CACHE_STALENESS; without the cap it would hold its key for good.
  StoreOptions capped = options();
  capped.maximumStalenessSeconds = 3600;
  CacheStore cappedStore(capped);
  cappedStore.record(CacheScope::kNamespace,
                     makeEntry(keyOf('a'), "team-a", kT, 31'557'600'000, "P1000Y"));
  cappedStore.record(CacheScope::kNamespace, makeEntry(keyOf('b'), "team-a", kT, -1, "unlimited"));
  EXPECT_EQ(store()
                .recordEntry(CacheScope::kNamespace,
                             makeEntry(keyOf('a'), "team-a", kT + 3601, -1, "uncapped store"))
                .outcome,
            RecordOutcome::kKept);
  for (const char key : {'a', 'b'}) {
    EXPECT_EQ(cappedStore
                  .recordEntry(CacheScope::kNamespace,
                               makeEntry(keyOf(key), "team-a", kT + 3600, -1, "at the cap"))
                  .outcome,
              RecordOutcome::kKept);
    EXPECT_EQ(cappedStore
                  .recordEntry(CacheScope::kNamespace,
                               makeEntry(keyOf(key), "team-a", kT + 3601, -1, "after the cap"))
                  .outcome,
              RecordOutcome::kReplaced);
    const auto hit =
        cappedStore.lookup(CacheScope::kNamespace, "team-a", keyOf(key), -1, kT + 3601);
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->executionOutput, "after the cap");
  }
}

TEST_F(StoreTest, EightThreadsRecordingTheSameKeyGetOneRowAndOneId) {
  constexpr int kThreads = 8;
  StoreOptions opts = options();
  opts.poolSize = kThreads;
  CacheStore concurrent(opts);
  std::atomic<int> ready{0};
  std::vector<RecordResult> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      // Half the threads carry a result one second newer (another pod): whoever writes first
      // holds the key, without a second row.
      std::string output = "r";
      output += std::to_string(i);
      const NewEntry entry = makeEntry(keyOf('c'), "team-a", kT + i % 2, -1, output);
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      try {
        results[i] = concurrent.recordEntry(CacheScope::kNamespace, entry);
      } catch (const std::exception& error) {
        errors[i] = error.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
  std::set<int64_t> ids;
  int inserted = 0;
  for (const auto& result : results) {
    ids.insert(result.entryId);
    if (result.outcome == RecordOutcome::kInserted) ++inserted;
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_GT(*ids.begin(), 0);
  EXPECT_EQ(inserted, 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
}

TEST_F(StoreTest, WritersRacingOnAFreshEntryChangeNothing) {
  // A fresh entry, then eight writers of other pods, all newer, at once: every one learns the
  // entry stays, and it is unchanged.
  const int64_t id =
      store().record(CacheScope::kNamespace, makeEntry(keyOf('d'), "team-a", kT, -1, "good"));
  constexpr int kThreads = 8;
  StoreOptions opts = options();
  opts.poolSize = kThreads;
  CacheStore concurrent(opts);
  std::atomic<int> ready{0};
  std::vector<RecordResult> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const NewEntry forged =
          makeEntry(keyOf('d'), "team-a", kT + 1 + i, -1, "forged" + std::to_string(i));
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      results[i] = concurrent.recordEntry(CacheScope::kNamespace, forged);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    EXPECT_EQ(result.entryId, id);
    EXPECT_EQ(result.outcome, RecordOutcome::kKept);
  }
  const auto hit = store().lookup(CacheScope::kNamespace, "team-a", keyOf('d'), -1, kT + 100);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->executionOutput, "good");
  EXPECT_EQ(hit->startedAtInSec, kT);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 1);
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
