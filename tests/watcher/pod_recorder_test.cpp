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

// A completed pod whose template Argo offloaded to a ConfigMap, owned by Workflow "wf-uid"; the
// template itself is returned for the ConfigMap.
std::pair<nlohmann::json, std::string> offloadedPod(const std::string& name, int n) {
  auto pod = makeTaggedPod("ns", name, keyFor(n));
  markSucceeded(pod, "{}");
  auto& env = pod["spec"]["containers"][1]["env"][0];
  std::string argoTemplate = env["value"];
  env["value"] = "offloaded";
  pod["metadata"]["ownerReferences"] = nlohmann::json::array(
      {{{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Workflow"}, {"uid", "wf-uid"}}});
  return {pod, argoTemplate};
}

nlohmann::json configMapFor(const std::string& name, const std::string& argoTemplate,
                            const std::string& ownerUid) {
  nlohmann::json configMap = {{"apiVersion", "v1"},
                              {"kind", "ConfigMap"},
                              {"metadata", {{"name", name}, {"namespace", "ns"}}},
                              {"data", {{"ARGO_TEMPLATE", argoTemplate}}}};
  if (!ownerUid.empty()) {
    configMap["metadata"]["ownerReferences"] = nlohmann::json::array(
        {{{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Workflow"}, {"uid", ownerUid}}});
  }
  return configMap;
}

class OffloadedPodRecorderTest : public ::testing::Test {
 protected:
  std::unique_ptr<PodRecorder> recorder(bool readOffloadedTemplates) {
    RecorderConfig config;
    config.retryBackoff = BackoffConfig{milliseconds(10), milliseconds(50)};
    config.readOffloadedTemplates = readOffloadedTemplates;
    auto made = std::make_unique<PodRecorder>(store_, *api_, config, metrics_);
    made->start();
    return made;
  }
  RecordingPlan plan(const nlohmann::json& pod) {
    RecordingRules rules;
    rules.readOffloadedTemplates = true;
    return planRecording(server_.createPod(pod), rules, 0).value();
  }
  double refusals(const std::string& reason) {
    return registry_.counter("kcache_watcher_record_refusals_total", "", {{"reason", reason}})
        .value();
  }
  int64_t configMapRequests() const {
    int64_t count = 0;
    for (const auto& request : server_.requests()) {
      if (request.path.find("/configmaps") != std::string::npos) ++count;
    }
    return count;
  }

  FakeKubeServer server_;
  std::unique_ptr<kube::KubeApi> api_ = kube::makeKubeClient(configFor(server_));
  InMemoryCacheRecorder store_;
  core::MetricsRegistry registry_;
  WatcherMetrics metrics_{registry_};
};

TEST_F(OffloadedPodRecorderTest, OnlyTheConfigMapOfThePodsWorkflowIsRead) {
  auto reading = recorder(true);
  const auto [owned, ownedTemplate] = offloadedPod("owned", 1);
  server_.createObject("configmaps", configMapFor("owned", ownedTemplate, "wf-uid"));
  const auto [planted, plantedTemplate] = offloadedPod("planted", 2);
  server_.createObject("configmaps", configMapFor("planted", plantedTemplate, ""));
  const auto [foreign, foreignTemplate] = offloadedPod("foreign", 3);
  server_.createObject("configmaps", configMapFor("foreign", foreignTemplate, "other-uid"));
  for (const auto* pod : {&planted, &foreign, &owned}) reading->enqueue(plan(*pod));
  ASSERT_TRUE(waitFor([&] { return metrics_.patches.value() == 1 && reading->queued() == 0; }));
  ASSERT_EQ(store_.entries().size(), 1u);
  EXPECT_EQ(store_.entries().at(0).podName, "owned");
  EXPECT_EQ(store_.entries().at(0).executionTemplate, ownedTemplate);
  EXPECT_EQ(refusals("template_not_owned"), 2);
}

TEST_F(OffloadedPodRecorderTest, OffTheRecorderRefusesWithoutAConfigMapRequest) {
  auto notReading = recorder(false);
  const auto [pod, argoTemplate] = offloadedPod("p", 1);
  server_.createObject("configmaps", configMapFor("p", argoTemplate, "wf-uid"));
  server_.clearRequests();
  notReading->enqueue(plan(pod));
  ASSERT_TRUE(waitFor([&] { return refusals("template_offloaded") == 1; }));
  EXPECT_EQ(notReading->queued(), 0u);
  EXPECT_TRUE(store_.entries().empty());
  EXPECT_EQ(configMapRequests(), 0);
}

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
