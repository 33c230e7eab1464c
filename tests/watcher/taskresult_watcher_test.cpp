// The watcher on modern Argo, against the fake API server over TLS: pods and their
// WorkflowTaskResults arrive on two streams in any order, and each step is recorded once, from
// the right source (docs/watcher.md, "The join with task results").
#include <gtest/gtest.h>

#include "core/execution_output.h"
#include "kube/kube_client.h"
#include "tests/support/test_stamp_keys.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/watcher_service.h"

namespace kcache::watcher {
namespace {

using fakekube::FakeKubeServer;
using fakekube::makeTaggedPod;
using fakekube::markSucceeded;
using nlohmann::json;
using std::chrono::milliseconds;
using testing::configFor;
using testing::InMemoryCacheRecorder;
using testing::keyFor;
using testing::waitFor;

const std::string kTaskResults = "workflowtaskresults";
const std::string kCacheId = "pipelines.kubeflow.org/cache_id";
const std::string kReported = "workflows.argoproj.io/report-outputs-completed";
const json kOutputs =
    R"({"parameters":[{"name":"out","value":"42","valueFrom":{"path":"/tmp/out"}}],"artifacts":[{"name":"out","path":"/tmp/out","s3":{"key":"wf/out.tgz"}}]})"_json;

json modernPod(const std::string& name, int n, const std::string& nodeId) {
  auto pod = makeTaggedPod("ns", name, keyFor(n));
  pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"] = nodeId;
  return pod;
}

// What Argo >= 3.6 leaves on a pod that finished: phase and container states, no outputs
// annotation, and (under most podGC strategies) no completed label.
void succeed(json& pod, int mainExitCode = 0) {
  markSucceeded(pod, "");
  pod["metadata"]["annotations"].erase("workflows.argoproj.io/outputs");
  pod["metadata"]["labels"].erase("workflows.argoproj.io/completed");
  pod["status"]["containerStatuses"][1]["state"]["terminated"]["exitCode"] = mainExitCode;
}

json taskResult(const std::string& nodeId, std::optional<std::string> reported,
                std::optional<json> outputs = kOutputs) {
  json result;
  result["metadata"]["name"] = nodeId;
  result["metadata"]["namespace"] = "ns";
  result["metadata"]["labels"]["workflows.argoproj.io/workflow"] = "wf-1";
  if (reported) result["metadata"]["labels"][kReported] = *reported;
  if (outputs) {
    result["outputs"] = *outputs;
    result["outputs"]["exitCode"] = "0";
  }
  return result;
}

class TaskResultWatcherTest : public ::testing::Test {
 protected:
  void start(milliseconds taskResultWait = std::chrono::minutes(10)) {
    WatcherConfig config;
    config.informer.namespaceName = "ns";
    config.informer.backoff = BackoffConfig{milliseconds(20), milliseconds(300)};
    config.recorder.admissionStamps = kcache::testing::testStampKeys();
    config.recorder.retryBackoff = BackoffConfig{milliseconds(20), milliseconds(300)};
    config.join.taskResultWait = taskResultWait;
    config.leaderElection = false;
    config.gcInterval = milliseconds(0);
    service_ = std::make_unique<WatcherService>(kube::makeKubeClient(configFor(server_)), config,
                                                store_, std::function<void()>{}, registry_);
    service_->start();
    // Both watches open: what the test changes next arrives as events, in order.
    ASSERT_TRUE(waitFor([&] {
      return service_->completedLists() >= 1 && service_->completedTaskResultLists() >= 1 &&
             server_.openWatchStreams() == 2;
    }));
  }
  void TearDown() override {
    if (service_) service_->stop();
  }

  std::string cacheIdOf(const std::string& name) {
    const auto pod = server_.pod("ns", name);
    return pod ? pod->at("metadata").at("labels").value(kCacheId, "") : "";
  }
  bool labelled(const std::string& name) {
    return waitFor([&] { return !cacheIdOf(name).empty(); });
  }
  double gauge(const std::string& name) { return registry_.gauge(name, "").value(); }
  double counter(const std::string& name, const core::MetricLabels& labels = {}) {
    return registry_.counter(name, "", labels).value();
  }
  std::string recordedOutputs(size_t index = 0) {
    return core::decodeExecutionOutput(store_.entries().at(index).executionOutput)
        .value()
        .argoOutputs;
  }
  // Moves the version past both streams' positions, compacts the history and cuts the streams:
  // both resume from a version now too old (410 Gone) and relist.
  void expireBothStreams() {
    server_.createObject("configmaps",
                         json{{"metadata", {{"name", "unrelated"}, {"namespace", "ns"}}}});
    server_.deleteObject("configmaps", "ns", "unrelated");
    server_.expireHistory();
    server_.dropWatchStreams();
  }
  void completePod(const std::string& name, int mainExitCode = 0) {
    server_.modifyPod("ns", name, [&](json& pod) { succeed(pod, mainExitCode); });
  }

  FakeKubeServer server_;
  InMemoryCacheRecorder store_;
  core::MetricsRegistry registry_;
  std::unique_ptr<WatcherService> service_;
};

TEST_F(TaskResultWatcherTest, TaskResultBeforeThePodCompletes) {
  start();
  server_.createPod(modernPod("step", 1, "wf-1-111"));
  server_.createObject(kTaskResults, taskResult("wf-1-111", "true"));
  ASSERT_TRUE(waitFor([&] { return gauge("kcache_watcher_taskresults_live") == 1; }));
  completePod("step");
  ASSERT_TRUE(labelled("step"));
  ASSERT_EQ(store_.entries().size(), 1u);
  EXPECT_EQ(recordedOutputs(), kOutputs.dump());  // compact, without exitCode
  EXPECT_EQ(store_.entries()[0].key, fakekube::taggedPodKey("ns", keyFor(1)));
  EXPECT_EQ(counter("kcache_watcher_steps_planned_total", {{"source", "taskresult"}}), 1);
  EXPECT_EQ(counter("kcache_watcher_taskresult_joins_total"), 1);
  EXPECT_GE(counter("kcache_watcher_taskresult_lists_total"), 1);
  EXPECT_EQ(counter("kcache_watcher_taskresult_events_total", {{"type", "ADDED"}}), 1);
}

TEST_F(TaskResultWatcherTest, PodCompletesBeforeTheTaskResult) {
  start();
  auto pod = modernPod("step", 1, "wf-1-111");
  succeed(pod);
  server_.createPod(pod);
  ASSERT_TRUE(waitFor([&] { return gauge("kcache_watcher_pods_waiting_for_taskresult") == 1; }));
  EXPECT_EQ(store_.calls(), 0);
  server_.createObject(kTaskResults, taskResult("wf-1-111", "true"));
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), kOutputs.dump());
  EXPECT_EQ(gauge("kcache_watcher_pods_waiting_for_taskresult"), 0);
}

TEST_F(TaskResultWatcherTest, InProgressTaskResultRecordsOnlyOnceReportedComplete) {
  start();
  auto pod = modernPod("step", 1, "wf-1-111");
  server_.createPod(pod);
  server_.createObject(kTaskResults, taskResult("wf-1-111", "false", json::object()));
  completePod("step");
  server_.modifyObject(kTaskResults, "ns", "wf-1-111", [](json& result) {
    result["outputs"] = kOutputs;  // ReportOutputs, before FinalizeOutput
  });
  ASSERT_TRUE(waitFor([&] {
    return gauge("kcache_watcher_pods_waiting_for_taskresult") == 1 &&
           counter("kcache_watcher_taskresult_events_total", {{"type", "MODIFIED"}}) == 1;
  }));
  EXPECT_EQ(store_.calls(), 0);
  EXPECT_EQ(cacheIdOf("step"), "");
  server_.modifyObject(kTaskResults, "ns", "wf-1-111",
                       [](json& result) { result["metadata"]["labels"][kReported] = "true"; });
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), kOutputs.dump());
}

TEST_F(TaskResultWatcherTest, UnlabelledTaskResultOfAnExecutorBefore352) {
  start();
  server_.createPod(modernPod("step", 1, "wf-1-111"));
  server_.createObject(kTaskResults, taskResult("wf-1-111", std::nullopt));
  completePod("step");
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), kOutputs.dump());
}

TEST_F(TaskResultWatcherTest, TaskResultDeletedBeforeThePodEventIsStillUsed) {
  start();
  server_.createPod(modernPod("step", 1, "wf-1-111"));
  server_.createObject(kTaskResults, taskResult("wf-1-111", "true"));
  ASSERT_TRUE(waitFor([&] { return gauge("kcache_watcher_taskresults_live") == 1; }));
  // Workflow completion deletes every task result, possibly before the pod event is seen.
  server_.deleteObject(kTaskResults, "ns", "wf-1-111");
  ASSERT_TRUE(waitFor([&] { return gauge("kcache_watcher_taskresults_buffered") == 1; }));
  completePod("step");
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), kOutputs.dump());
}

TEST_F(TaskResultWatcherTest, OldArgoAnnotationWithoutTaskResultIsRecordedAtOnce) {
  start();  // a ten-minute wait: only the annotation path can record within the test
  auto pod = modernPod("step", 1, "wf-1-111");
  markSucceeded(pod, R"({"parameters":[{"name":"out","value":"7"}]})");
  server_.createPod(pod);
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), R"({"parameters":[{"name":"out","value":"7"}]})");
  EXPECT_EQ(counter("kcache_watcher_steps_planned_total", {{"source", "annotation"}}), 1);
}

TEST_F(TaskResultWatcherTest, ReplayedTaskResultsAreNeverSeen) {
  start(milliseconds(300));
  auto replay = taskResult("wf-1-111", "true");
  replay["metadata"]["labels"]["kcache.kubeflow.org/replayed-from"] = "12";
  server_.createObject(kTaskResults, replay);
  auto pod = modernPod("step", 1, "wf-1-111");
  succeed(pod);
  server_.createPod(pod);
  // Recorded after the wait, without the replayed outputs.
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), "");
  EXPECT_EQ(counter("kcache_watcher_steps_planned_total", {{"source", "none"}}), 1);
  EXPECT_EQ(counter("kcache_watcher_taskresult_events_total", {{"type", "ADDED"}}), 0);
  EXPECT_EQ(gauge("kcache_watcher_taskresults_live"), 0);
}

TEST_F(TaskResultWatcherTest, MainExitingNonZeroIsNotRecorded) {
  start();
  server_.createPod(modernPod("failed", 1, "wf-1-111"));
  server_.createObject(kTaskResults, taskResult("wf-1-111", "true"));
  completePod("failed", 3);
  // Events are handled in order: once a later step is labelled, the failed one was seen.
  server_.createPod(modernPod("later", 2, "wf-1-222"));
  server_.createObject(kTaskResults, taskResult("wf-1-222", "true"));
  completePod("later");
  ASSERT_TRUE(labelled("later"));
  EXPECT_EQ(store_.calls(), 1);
  EXPECT_EQ(cacheIdOf("failed"), "");
}

TEST_F(TaskResultWatcherTest, RelistsOfEitherStreamDoNotRecordTwice) {
  start();
  server_.createPod(modernPod("step", 1, "wf-1-111"));
  server_.createObject(kTaskResults, taskResult("wf-1-111", "true"));
  // The label patch fails for a while, so the step is still unlabelled when both streams relist.
  server_.failNextRequests(6, 500, "/pods/step");
  completePod("step");
  ASSERT_TRUE(waitFor([&] { return counter("kcache_watcher_patch_failures_total") >= 1; }));
  expireBothStreams();
  ASSERT_TRUE(waitFor([&] {
    return counter("kcache_watcher_relists_total") >= 1 &&
           counter("kcache_watcher_taskresult_relists_total") >= 1;
  }));
  ASSERT_TRUE(labelled("step"));
  server_.modifyObject(kTaskResults, "ns", "wf-1-111",
                       [](json& result) { result["progress"] = "1/1"; });
  expireBothStreams();
  ASSERT_TRUE(waitFor([&] {
    return counter("kcache_watcher_relists_total") >= 2 &&
           counter("kcache_watcher_taskresult_relists_total") >= 2;
  }));
  // One more step after the relists: once it is labelled, everything before was handled.
  server_.createPod(modernPod("later", 2, "wf-1-222"));
  server_.createObject(kTaskResults, taskResult("wf-1-222", "true"));
  completePod("later");
  ASSERT_TRUE(labelled("later"));
  EXPECT_EQ(store_.calls(), 2);
  int successful = 0;
  for (const auto& patch : server_.patches())
    successful += patch.name == "step" && patch.status == 200;
  EXPECT_EQ(successful, 1);
}

TEST_F(TaskResultWatcherTest, NoTaskResultWithinTheWaitRecordsWithoutOutputs) {
  start(milliseconds(300));
  auto pod = modernPod("step", 1, "wf-1-111");
  succeed(pod);
  server_.createPod(pod);
  ASSERT_TRUE(labelled("step"));
  EXPECT_EQ(recordedOutputs(), "");
}

}  // namespace
}  // namespace kcache::watcher
