// Attack 2 of issue 13: overwriting a fresh entry. Before "first fresh writer wins", any record
// that started later replaced the entry of its key at once, so one forged (or merely repeated)
// record of a step replaced the good result every namespace member reuses, and a forged P1000Y
// staleness kept the poisoned result for good. Here the forged record goes through the real
// webhook and watcher: a namespace member runs the same step in a workflow of its own (same
// template and namespace, so it is admitted, tagged and stamped like any miss) and its executor
// reports other outputs. It must change nothing; the legitimate path
// (first record, stale entries refreshed, exactly one entry under concurrency) keeps working.
#include <thread>

#include "tests/security/attack_fixture.h"

namespace kcache::security_testing {
namespace {

constexpr const char* kStalenessAnnotation = "pipelines.kubeflow.org/max_cache_staleness";

class OverwriteAttackTest : public AttackTest {};

TEST_F(OverwriteAttackTest, AForgedRecordOfAFreshStepChangesNothing) {
  startServer("argo-3.6", {});
  // The attacker's run is admitted while no entry exists yet, asking for P1000Y.
  json attacker = podOfRun(2);
  attacker["metadata"]["annotations"][kStalenessAnnotation] = "P1000Y";
  const auto attackerMiss = admit(attacker);
  ASSERT_TRUE(attackerMiss.hasPatch) << log();
  ASSERT_FALSE(isEchoPod(attackerMiss.patchedPod));
  const json forged = attackerMiss.patchedPod;
  const std::string entryId = runLegitimately(1, stepOutputs("0.93"));
  ASSERT_FALSE(entryId.empty());
  const auto before = entries();
  ASSERT_EQ(before.size(), 1u);

  // The attack: the attacker's pod completes with poisoned outputs, a moment after the good
  // record (entries are recorded in whole seconds: a record of the same second never counted as
  // newer).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  fake_.createPod(forged);
  runStep(forged, stepOutputs("poisoned"));
  ASSERT_TRUE(waitForCacheId(forged)) << log();

  // The watcher learned the fresh entry stays: the forged pod is labelled with it, nothing else.
  EXPECT_EQ(cacheIdOf(forged), entryId);
  const auto after = entries();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id, before[0].id);
  EXPECT_EQ(after[0].executionOutput, before[0].executionOutput);
  EXPECT_EQ(after[0].startedAtInSec, before[0].startedAtInSec);
  EXPECT_EQ(after[0].maxCacheStaleness, before[0].maxCacheStaleness);
  EXPECT_EQ(after[0].podName, before[0].podName);
  EXPECT_EQ(metric("kcache_watcher_records_kept_total"), 1);
  EXPECT_EQ(metric("kcache_watcher_entries_recorded_total"), 1);

  // The next run of the pipeline is replayed with the good outputs.
  const auto hit = admit(podOfRun(3));
  ASSERT_TRUE(isEchoPod(hit.patchedPod)) << log();
  EXPECT_EQ(hitOutputs(hit), stepOutputs("0.93"));
}

TEST_F(OverwriteAttackTest, APoisonedEntryDoesNotOutliveTheMaximumStaleness) {
  // The poisoned record comes first (no good entry yet) and asks for P1000Y; the operator's
  // MAXIMUM_CACHE_STALENESS bounds both how long it is served and how long it holds its key.
  startServer("argo-3.6", {}, {{"MAXIMUM_CACHE_STALENESS", "PT5S"}});
  json attacker = podOfRun(1);
  attacker["metadata"]["annotations"][kStalenessAnnotation] = "P1000Y";
  const auto attackerMiss = admit(attacker);
  ASSERT_TRUE(attackerMiss.hasPatch) << log();
  const json forged = attackerMiss.patchedPod;
  fake_.createPod(forged);
  runStep(forged, stepOutputs("poisoned"));
  ASSERT_TRUE(waitForCacheId(forged)) << log();
  ASSERT_EQ(entries().size(), 1u);
  EXPECT_EQ(entries()[0].maxCacheStaleness, 5) << "recorded capped";
  EXPECT_TRUE(isEchoPod(admit(podOfRun(2)).patchedPod)) << "served while fresh, as any entry";

  // Past the cap: the next run misses, runs, and its result replaces the poisoned one.
  std::this_thread::sleep_for(std::chrono::seconds(6));
  const std::string refreshed = runLegitimately(3, stepOutputs("0.93"));
  EXPECT_EQ(refreshed, std::to_string(entries()[0].id));
  ASSERT_EQ(entries().size(), 1u);
  EXPECT_EQ(
      json::parse(json::parse(entries()[0].executionOutput)[kOutputsAnnotation].get<std::string>()),
      stepOutputs("0.93"));
  const auto hit = admit(podOfRun(4));
  ASSERT_TRUE(isEchoPod(hit.patchedPod)) << log();
  EXPECT_EQ(hitOutputs(hit), stepOutputs("0.93"));
}

TEST_F(OverwriteAttackTest, TwoRunsFinishingTogetherGiveOneEntry) {
  // Exactly once: two legitimate runs of the step miss, run and complete at the same moment;
  // the watcher records one entry and labels both pods with it.
  startServer("argo-3.6", {});
  const json pod1 = podOfRun(1), pod2 = podOfRun(2);
  const auto miss1 = admit(pod1), miss2 = admit(pod2);
  ASSERT_TRUE(miss1.hasPatch && miss2.hasPatch) << log();
  ASSERT_FALSE(isEchoPod(miss1.patchedPod) || isEchoPod(miss2.patchedPod));
  fake_.createPod(miss1.patchedPod);
  fake_.createPod(miss2.patchedPod);
  runStep(miss1.patchedPod, stepOutputs("first"));
  runStep(miss2.patchedPod, stepOutputs("second"));
  ASSERT_TRUE(waitForCacheId(pod1) && waitForCacheId(pod2)) << log();
  EXPECT_EQ(cacheIdOf(pod1), cacheIdOf(pod2));
  EXPECT_EQ(entries().size(), 1u);
  EXPECT_EQ(metric("kcache_watcher_entries_recorded_total"), 1);
  EXPECT_EQ(metric("kcache_watcher_records_kept_total"), 1);
}

}  // namespace
}  // namespace kcache::security_testing
