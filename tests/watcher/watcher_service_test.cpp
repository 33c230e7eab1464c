#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "kube/kube_client.h"
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
using testing::InMemoryCacheRecorder;
using testing::keyFor;
using testing::numbered;
using testing::waitFor;

const std::string kCacheId = "pipelines.kubeflow.org/cache_id";

WatcherConfig fastConfig(const std::string& ns) {
  WatcherConfig config;
  config.informer.namespaceName = ns;
  config.informer.pageSize = 50;
  config.informer.backoff = BackoffConfig{milliseconds(20), milliseconds(300)};
  config.recorder.admissionStamps = kcache::testing::testStampKeys();
  config.recorder.retryBackoff = BackoffConfig{milliseconds(20), milliseconds(300)};
  config.leaderElection = false;
  config.gcInterval = milliseconds(0);
  return config;
}

std::string cacheIdOf(const FakeKubeServer& server, const std::string& ns,
                      const std::string& name) {
  const auto pod = server.pod(ns, name);
  if (!pod) return "";
  return pod->at("metadata").at("labels").value(kCacheId, "");
}

void complete(FakeKubeServer& server, const std::string& ns, const std::string& name) {
  server.modifyPod(ns, name, [&](nlohmann::json& pod) {
    markSucceeded(pod, R"({"parameters":[{"name":"out","value":")" + name + R"("}]})");
  });
}

class WatcherServiceTest : public ::testing::Test {
 protected:
  std::unique_ptr<WatcherService> makeService(WatcherConfig config, std::function<void()> gc = {}) {
    return std::make_unique<WatcherService>(kube::makeKubeClient(configFor(server_)),
                                            std::move(config), store_, std::move(gc), registry_);
  }
  double metric(const std::string& name) {
    // Counters are found again by name: asking twice returns the same object.
    return registry_.counter(name, "").value();
  }
  int successfulPatchesFor(const std::string& name) {
    int count = 0;
    for (const auto& patch : server_.patches()) count += patch.name == name && patch.status == 200;
    return count;
  }

  FakeKubeServer server_;
  InMemoryCacheRecorder store_;
  core::MetricsRegistry registry_;
};

TEST_F(WatcherServiceTest, RefusesToStartWithoutTheAdmissionStampSecret) {
  WatcherConfig config = fastConfig("ns");
  config.recorder.admissionStamps = nullptr;
  EXPECT_THROW(makeService(config), std::invalid_argument);
}

TEST_F(WatcherServiceTest, RecordsACompletedPodAndLabelsItWithTheEntryId) {
  auto service = makeService(fastConfig("ns"));
  service->start();
  server_.createPod(makeTaggedPod("ns", "step", keyFor(1)));
  ASSERT_TRUE(waitFor([&] { return service->completedLists() >= 1; }));
  complete(server_, "ns", "step");
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "ns", "step").empty(); }));
  const auto entries = store_.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(cacheIdOf(server_, "ns", "step"), "1");
  EXPECT_EQ(entries[0].podName, "step");
  EXPECT_EQ(entries[0].namespaceName, "ns");
  EXPECT_EQ(entries[0].runDurationSeconds, 90);
  EXPECT_NE(entries[0].executionOutput.find("out"), std::string::npos);
  // The patch touched only the cache_id label (and named the pod's uid as a precondition).
  const auto patches = server_.patches();
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].body["metadata"]["labels"].size(), 1u);
  EXPECT_EQ(patches[0].body["metadata"]["labels"][kCacheId], "1");
  EXPECT_EQ(patches[0].body["metadata"].size(), 2u);
  EXPECT_EQ(server_.pod("ns", "step")
                ->at("metadata")
                .at("labels")
                .value("pipelines.kubeflow.org/cache_enabled", ""),
            "true");
  // The label can show before the recorder has counted its patch.
  EXPECT_TRUE(waitFor([&] { return metric("kcache_watcher_patches_total") == 1; }));
  EXPECT_EQ(metric("kcache_watcher_entries_recorded_total"), 1);
  service->stop();
}

TEST_F(WatcherServiceTest, IgnoresHitsRunningPodsAndOtherNamespaces) {
  auto service = makeService(fastConfig("ns"));
  service->start();
  auto hit = makeTaggedPod("ns", "hit", keyFor(1));
  hit["metadata"]["labels"][kCacheId] = "7";
  markSucceeded(hit, "{}");
  server_.createPod(hit);
  server_.createPod(makeTaggedPod("ns", "running", keyFor(2)));
  auto elsewhere = makeTaggedPod("other", "done", keyFor(3));
  markSucceeded(elsewhere, "{}");
  server_.createPod(elsewhere);
  auto marker = makeTaggedPod("ns", "marker", keyFor(4));
  markSucceeded(marker, "{}");
  server_.createPod(marker);
  // Events are handled in order, so once the last pod is labelled the others have been seen.
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "ns", "marker").empty(); }));
  EXPECT_EQ(store_.calls(), 1);
  EXPECT_EQ(cacheIdOf(server_, "ns", "hit"), "7");
  EXPECT_EQ(cacheIdOf(server_, "ns", "running"), "");
  EXPECT_EQ(cacheIdOf(server_, "other", "done"), "");
}

TEST_F(WatcherServiceTest, RetriesFailedPatchesWithoutRecordingAgain) {
  auto service = makeService(fastConfig("ns"));
  service->start();
  server_.createPod(makeTaggedPod("ns", "step", keyFor(1)));
  ASSERT_TRUE(waitFor([&] { return service->completedLists() >= 1; }));
  server_.failNextRequests(3, 500, "/pods/step");
  complete(server_, "ns", "step");
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "ns", "step").empty(); }));
  EXPECT_EQ(metric("kcache_watcher_patch_failures_total"), 3);
  EXPECT_EQ(store_.calls(), 1);
  EXPECT_EQ(successfulPatchesFor("step"), 1);
}

TEST_F(WatcherServiceTest, RetriesFailedStoreWrites) {
  auto service = makeService(fastConfig("ns"));
  service->start();
  ASSERT_TRUE(waitFor([&] { return service->completedLists() >= 1; }));
  store_.failNext(2);
  auto pod = makeTaggedPod("ns", "step", keyFor(1));
  markSucceeded(pod, "{}");
  server_.createPod(pod);
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "ns", "step").empty(); }));
  EXPECT_EQ(store_.calls(), 3);
  EXPECT_EQ(store_.entries().size(), 1u);
  EXPECT_EQ(metric("kcache_watcher_record_failures_total"), 2);
}

TEST_F(WatcherServiceTest, RecordsAPodThatCompletedWhileStopped) {
  server_.createPod(makeTaggedPod("ns", "early", keyFor(1)));
  {
    auto service = makeService(fastConfig("ns"));
    service->start();
    ASSERT_TRUE(waitFor([&] { return service->completedLists() >= 1; }));
    service->stop();
  }
  complete(server_, "ns", "early");
  auto service = makeService(fastConfig("ns"));
  service->start();
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "ns", "early").empty(); }));
  EXPECT_EQ(store_.calls(), 1);
}

TEST_F(WatcherServiceTest, APodDeletedBeforeItsPatchIsDroppedQuietly) {
  auto service = makeService(fastConfig("ns"));
  service->start();
  ASSERT_TRUE(waitFor([&] { return service->completedLists() >= 1; }));
  // Patches fail until the pod is gone, then the retry meets a 404.
  server_.failNextRequests(1000000, 500, "/pods/gone");
  auto pod = makeTaggedPod("ns", "gone", keyFor(1));
  markSucceeded(pod, "{}");
  server_.createPod(pod);
  ASSERT_TRUE(waitFor([&] { return metric("kcache_watcher_patch_failures_total") >= 1; }));
  server_.deletePod("ns", "gone");
  server_.failNextRequests(0);
  ASSERT_TRUE(waitFor([&] {
    const auto patches = server_.patches();
    return !patches.empty() && patches.back().status == 404;
  }));
  auto after = makeTaggedPod("ns", "after", keyFor(2));
  markSucceeded(after, "{}");
  server_.createPod(after);
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "ns", "after").empty(); }));
  EXPECT_EQ(store_.entries().size(), 2u);
}

// Many pods complete while watch streams are cut every few hundred milliseconds, versions expire
// (forcing relists), and some patches fail: every pod is recorded exactly once and labelled with
// its own entry id.
TEST_F(WatcherServiceTest, EveryPodRecordedExactlyOnceThroughDropsExpiryAndFailures) {
  constexpr int kPods = 1000;
  auto service = makeService(fastConfig(""));
  service->start();

  std::atomic<bool> chaosDone{false};
  std::thread chaos([&] {
    std::mt19937 random(42);
    int round = 0;
    while (!chaosDone.load()) {
      std::this_thread::sleep_for(milliseconds(250 + random() % 250));
      ++round;
      if (round % 3 == 0) {
        // Something the watcher does not see moves the version on, then history is compacted:
        // the watcher's resume version is now too old (410 Gone, relist).
        auto untagged = makeTaggedPod("unrelated", numbered("noise-", round), keyFor(round));
        untagged["metadata"]["labels"].erase(kCacheId);
        server_.createPod(untagged);
        server_.expireHistory();
      }
      server_.dropWatchStreams();
      if (round % 4 == 0) server_.failNextRequests(2, 500, "/pods/");
      if (round % 5 == 0) server_.sendErrorEvent(500, "InternalError", "chaos");
    }
  });

  for (int i = 0; i < kPods; ++i) {
    const std::string ns = numbered("team-", i % 3);
    server_.createPod(makeTaggedPod(ns, numbered("pod-", i), keyFor(i)));
    if (i % 50 == 49) std::this_thread::sleep_for(milliseconds(20));
  }
  for (int i = 0; i < kPods; ++i) {
    const std::string ns = numbered("team-", i % 3);
    complete(server_, ns, numbered("pod-", i));
    // Later updates of a completed pod must not record it again.
    if (i % 7 == 0) {
      server_.modifyPod(ns, numbered("pod-", i),
                        [](nlohmann::json& pod) { pod["metadata"]["annotations"]["x"] = "y"; });
    }
    if (i % 50 == 49) std::this_thread::sleep_for(milliseconds(20));
  }

  const bool allLabelled = waitFor(
      [&] {
        for (int i = 0; i < kPods; ++i) {
          if (cacheIdOf(server_, numbered("team-", i % 3), numbered("pod-", i)).empty()) {
            return false;
          }
        }
        return true;
      },
      std::chrono::seconds(90));
  chaosDone = true;
  chaos.join();
  service->stop();
  ASSERT_TRUE(allLabelled);

  const auto entries = store_.entries();
  ASSERT_EQ(entries.size(), static_cast<size_t>(kPods));
  EXPECT_EQ(store_.calls(), kPods) << "a pod was written to the store more than once";
  std::set<std::string> ids;
  for (int i = 0; i < kPods; ++i) {
    const std::string name = numbered("pod-", i);
    const std::string id = cacheIdOf(server_, numbered("team-", i % 3), name);
    ids.insert(id);
    const auto& entry = entries.at(static_cast<size_t>(std::stoll(id) - 1));
    EXPECT_EQ(entry.podName, name);
    EXPECT_EQ(entry.key, fakekube::taggedPodKey(numbered("team-", i % 3), keyFor(i)));
    EXPECT_EQ(successfulPatchesFor(name), 1) << name;
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kPods));
  // Which of the two the chaos caused depends on timing (a slow relist can absorb several drops);
  // that the informer went through them at all does not.
  EXPECT_GE(metric("kcache_watcher_relists_total") + metric("kcache_watcher_watch_restarts_total"),
            1);
}

TEST_F(WatcherServiceTest, GarbageCollectionRunsPeriodicallyWhileLeading) {
  std::atomic<int> runs{0};
  WatcherConfig config = fastConfig("ns");
  config.gcInterval = milliseconds(50);
  auto service = makeService(config, [&] {
    if (++runs == 2) throw std::runtime_error("database went away");
  });
  service->start();
  ASSERT_TRUE(waitFor([&] { return runs.load() >= 3; }));
  service->stop();
  const int after = runs.load();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(runs.load(), after);
  EXPECT_GE(metric("kcache_watcher_gc_failures_total"), 1);
}

}  // namespace
}  // namespace kcache::watcher
