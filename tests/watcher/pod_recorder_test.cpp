#include <gtest/gtest.h>

#include "kube/kube_client.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/pod_recorder.h"

namespace kcache::watcher {
namespace {

using fakekube::FakeKubeServer;
using fakekube::makeTaggedPod;
using fakekube::markSucceeded;
using std::chrono::milliseconds;
using testing::configFor;
using testing::InMemoryCacheRecorder;
using testing::keyFor;
using testing::waitFor;

class PodRecorderTest : public ::testing::Test {
 protected:
  PodRecorderTest() {
    RecorderConfig config;
    config.retryBackoff = BackoffConfig{milliseconds(10), milliseconds(50)};
    config.maxAttempts = 3;
    recorder_ = std::make_unique<PodRecorder>(store_, *api_, config, metrics_,
                                              [] { return int64_t{1'800'000'000}; });
    recorder_->start();
  }

  RecordingPlan completedPod(const std::string& name, int n) {
    auto pod = makeTaggedPod("ns", name, keyFor(n));
    markSucceeded(pod, "{}");
    return planRecording(server_.createPod(pod), {}, 0).value();
  }

  FakeKubeServer server_;
  std::unique_ptr<kube::KubeApi> api_ = kube::makeKubeClient(configFor(server_));
  InMemoryCacheRecorder store_;
  core::MetricsRegistry registry_;
  WatcherMetrics metrics_{registry_};
  std::unique_ptr<PodRecorder> recorder_;
};

TEST_F(PodRecorderTest, RepeatedEventsOfOnePodRecordItOnce) {
  const auto pod = completedPod("p", 1);
  for (int i = 0; i < 5; ++i) recorder_->enqueue(pod);
  ASSERT_TRUE(waitFor([&] { return metrics_.patches.value() == 1 && recorder_->queued() == 0; }));
  for (int i = 0; i < 5; ++i) recorder_->enqueue(pod);  // stale events from before the patch
  EXPECT_EQ(store_.calls(), 1);
  EXPECT_EQ(store_.entries().at(0).recordedAtInSec, 1'800'000'000);
  EXPECT_EQ(recorder_->tracked(), 1u);
  // Seeing the pod labelled ends the need to remember it.
  EXPECT_FALSE(cacheIdLabel(server_.pod("ns", "p").value()).value_or("").empty());
  recorder_->onPodLabelled(identityOf(server_.pod("ns", "p").value()));
  EXPECT_EQ(recorder_->tracked(), 0u);
  EXPECT_EQ(metrics_.patches.value(), 1);
  EXPECT_EQ(metrics_.queuedToLabelled.snapshot().count, 1u);
  EXPECT_NE(
      registry_.renderPrometheusText().find("kcache_watcher_completion_to_label_seconds_bucket"),
      std::string::npos);
}

TEST_F(PodRecorderTest, ARelistForgetsLabelledPodsThatAreGone) {
  recorder_->enqueue(completedPod("p", 1));
  ASSERT_TRUE(waitFor([&] { return metrics_.patches.value() == 1; }));
  EXPECT_EQ(recorder_->tracked(), 1u);
  recorder_->onListed({"some-other-uid"});
  EXPECT_EQ(recorder_->tracked(), 0u);
}

TEST_F(PodRecorderTest, GivesUpAfterMaxAttemptsAndTakesThePodBackOnItsNextEvent) {
  store_.failNext(3);
  const auto pod = completedPod("p", 1);
  recorder_->enqueue(pod);
  ASSERT_TRUE(waitFor([&] { return store_.calls() == 3 && recorder_->tracked() == 0; }));
  EXPECT_EQ(metrics_.recordFailures.value(), 3);
  recorder_->enqueue(pod);
  ASSERT_TRUE(waitFor([&] { return metrics_.patches.value() == 1; }));
  EXPECT_EQ(store_.entries().size(), 1u);
}

TEST_F(PodRecorderTest, StoppingDropsQueuedWorkWithoutWaitingForRetries) {
  server_.failNextRequests(1000000, 500, "/pods/");
  recorder_->enqueue(completedPod("p", 1));
  ASSERT_TRUE(waitFor([&] { return metrics_.patchFailures.value() >= 1; }));
  recorder_->stop();
  EXPECT_EQ(recorder_->queued(), 0u);
  EXPECT_EQ(recorder_->tracked(), 0u);
}

}  // namespace
}  // namespace kcache::watcher
