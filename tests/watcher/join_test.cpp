#include <gtest/gtest.h>

#include "core/execution_output.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/support/test_stamp_keys.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/join.h"

namespace kcache::watcher {
namespace {

using fakekube::makeTaggedPod;
using fakekube::markSucceeded;
using nlohmann::json;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::keyFor;

const std::string kNodeIdAnnotation = "workflows.argoproj.io/node-id";
const std::string kReported = "workflows.argoproj.io/report-outputs-completed";
const json kOutputs =
    R"({"parameters":[{"name":"model","value":"s3://b/m","valueFrom":{"path":"/tmp/m"}}],"artifacts":[{"name":"model","path":"/tmp/m","s3":{"key":"wf/m.tgz"}}]})"_json;

// A pod of a modern Argo line that succeeded: node id annotation, no outputs annotation, no
// completed label (podGC may delete it before Argo sets one).
json readyPod(const std::string& name, int n, const std::string& nodeId) {
  auto pod = makeTaggedPod("ns", name, keyFor(n));
  pod["metadata"]["uid"] = "uid-" + name;
  pod["metadata"]["annotations"][kNodeIdAnnotation] = nodeId;
  pod["metadata"]["labels"]["pipelines.kubeflow.org/metadata_execution_id"] = "17";
  markSucceeded(pod, "");
  pod["metadata"]["annotations"].erase("workflows.argoproj.io/outputs");
  pod["metadata"]["labels"].erase("workflows.argoproj.io/completed");
  return pod;
}

json taskResult(const std::string& nodeId, std::optional<std::string> reported,
                std::optional<json> outputs = kOutputs) {
  json result = {{"apiVersion", "argoproj.io/v1alpha1"},
                 {"kind", "WorkflowTaskResult"},
                 {"metadata",
                  {{"name", nodeId},
                   {"namespace", "ns"},
                   {"uid", "tr-" + nodeId},
                   {"labels", {{"workflows.argoproj.io/workflow", "wf-1"}}}}}};
  if (reported) result["metadata"]["labels"][kReported] = *reported;
  if (outputs) {
    result["outputs"] = *outputs;
    result["outputs"]["exitCode"] = "0";  // as the controller would add it
  }
  return result;
}

std::string argoOutputsOf(const RecordingPlan& plan) {
  return core::decodeExecutionOutput(plan.entry.executionOutput).value().argoOutputs;
}

class JoinTest : public ::testing::Test {
 protected:
  JoinTest() {
    config_.taskResultWait = minutes(2);
    config_.inProgressWait = minutes(10);
    config_.deletedRetention = minutes(5);
    config_.maxDeletedTaskResults = 3;
  }
  OutputsJoin& join() {
    if (!join_) {
      RecordingRules rules;  // as in cache-server: only stamped pods are recorded
      rules.admissionStamps = kcache::testing::testStampKeys();
      join_ = std::make_unique<OutputsJoin>(config_, std::move(rules), metrics_.join);
    }
    return *join_;
  }
  std::vector<RecordingPlan> pod(const json& object, seconds at = seconds(0)) {
    return join().onPod(object, t0_ + at);
  }
  std::vector<RecordingPlan> result(const json& object, seconds at = seconds(0)) {
    return join().onTaskResult(object, t0_ + at);
  }
  std::vector<RecordingPlan> deleted(const json& object, seconds at = seconds(0)) {
    return join().onTaskResultDeleted(object, t0_ + at);
  }
  std::vector<RecordingPlan> expire(seconds at) { return join().expire(t0_ + at); }

  JoinConfig config_;
  core::MetricsRegistry registry_;
  WatcherMetrics metrics_{registry_};
  std::unique_ptr<OutputsJoin> join_;
  const OutputsJoin::TimePoint t0_ = std::chrono::steady_clock::now();
};

TEST_F(JoinTest, PodsKcacheDidNotAdmitAreRefusedAndCountedOncePerPodByReason) {
  auto refusals = [&](const std::string& reason) {
    return registry_.counter("kcache_watcher_record_refusals_total", "", {{"reason", reason}})
        .value();
  };
  auto unstamped = readyPod("unstamped", 1, "wf-1-100");
  unstamped["metadata"]["annotations"].erase("kcache.kubeflow.org/admission-stamp");
  auto forged = readyPod("forged", 1, "wf-1-101");
  forged["metadata"]["annotations"]["kcache.kubeflow.org/admission-stamp"] =
      "v1:" + std::string(64, '0');
  auto neverAdmitted = readyPod("never", 1, "wf-1-102");
  neverAdmitted["metadata"]["labels"].erase("pipelines.kubeflow.org/cache_enabled");
  for (const char* node : {"wf-1-100", "wf-1-101", "wf-1-102"}) {
    EXPECT_TRUE(result(taskResult(node, "true")).empty());
  }
  for (int event = 0; event < 3; ++event) {
    EXPECT_TRUE(pod(unstamped, seconds(event)).empty());
    EXPECT_TRUE(pod(forged, seconds(event)).empty());
    EXPECT_TRUE(pod(neverAdmitted, seconds(event)).empty());
  }
  EXPECT_EQ(refusals("stamp_missing"), 1);
  EXPECT_EQ(refusals("stamp_invalid"), 1);
  EXPECT_EQ(refusals("not_cache_enabled"), 1);
  // A stamped pod of the same step is recorded.
  EXPECT_EQ(pod(readyPod("admitted", 1, "wf-1-100"), seconds(5)).size(), 1u);
}

TEST_F(JoinTest, AForgedKeyIsRefusedCountedAndLoggedOncePerPod) {
  auto forged = readyPod("p", 1, "wf-1-100");
  forged["metadata"]["annotations"]["pipelines.kubeflow.org/execution_cache_key"] =
      fakekube::taggedPodKey("ns", keyFor(2));  // another step's key
  EXPECT_TRUE(result(taskResult("wf-1-100", "true")).empty());
  for (int event = 0; event < 3; ++event) EXPECT_TRUE(pod(forged, seconds(event)).empty());
  EXPECT_EQ(
      registry_.counter("kcache_watcher_record_refusals_total", "", {{"reason", "key_mismatch"}})
          .value(),
      1);
  EXPECT_EQ(join().waitingPods(), 0u);
  // The same pod with its true key is recorded.
  EXPECT_EQ(pod(readyPod("p", 1, "wf-1-100"), seconds(5)).size(), 1u);
}

TEST_F(JoinTest, TaskResultBeforeThePodCompletes) {
  auto running = readyPod("p", 1, "wf-1-100");
  running["status"]["phase"] = "Running";
  EXPECT_TRUE(pod(running).empty());
  EXPECT_TRUE(result(taskResult("wf-1-100", "true")).empty());
  const auto plans = pod(readyPod("p", 1, "wf-1-100"), seconds(3));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].pod.name, "p");
  EXPECT_EQ(plans[0].entry.key, fakekube::taggedPodKey("ns", keyFor(1)));
  // The outputs exactly as the annotation would carry them: compact, without exitCode.
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());
  EXPECT_EQ(core::decodeExecutionOutput(plans[0].entry.executionOutput)->metadataExecutionId, "17");
  EXPECT_EQ(metrics_.join.joins.value(), 1);
  EXPECT_EQ(metrics_.join.recordedFromTaskResult.value(), 1);
  EXPECT_EQ(join().waitingPods(), 0u);
}

TEST_F(JoinTest, PodCompletesBeforeTheTaskResult) {
  EXPECT_TRUE(pod(readyPod("p", 1, "n1")).empty());
  EXPECT_EQ(join().waitingPods(), 1u);
  EXPECT_EQ(metrics_.join.podsWaiting.value(), 1);
  const auto plans = result(taskResult("n1", "true"), seconds(5));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());
  EXPECT_EQ(join().waitingPods(), 0u);
  // Later events of either side plan nothing more.
  EXPECT_TRUE(result(taskResult("n1", "true"), seconds(6)).empty());
  EXPECT_TRUE(expire(minutes(30)).empty());
}

TEST_F(JoinTest, InProgressLabelRecordsOnlyOnceTrue) {
  EXPECT_TRUE(result(taskResult("n1", "false", json::object())).empty());
  EXPECT_TRUE(pod(readyPod("p", 1, "n1")).empty());
  EXPECT_TRUE(result(taskResult("n1", "false")).empty());
  // An in-progress task result is waited for beyond the wait for an absent one.
  EXPECT_TRUE(expire(minutes(3)).empty());
  EXPECT_EQ(join().waitingPods(), 1u);
  const auto plans = result(taskResult("n1", "true"), minutes(4));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());
}

TEST_F(JoinTest, ATaskResultStuckInProgressIsNotRecorded) {
  result(taskResult("n1", "false"));
  EXPECT_TRUE(pod(readyPod("p", 1, "n1")).empty());
  EXPECT_TRUE(expire(minutes(9)).empty());
  EXPECT_TRUE(expire(minutes(10)).empty());
  EXPECT_EQ(join().waitingPods(), 0u);
  EXPECT_EQ(metrics_.join.abandoned.value(), 1);

  result(taskResult("n2", "false"));
  EXPECT_TRUE(pod(readyPod("q", 2, "n2")).empty());
  EXPECT_TRUE(deleted(taskResult("n2", "false")).empty());
  EXPECT_EQ(join().waitingPods(), 0u);
  EXPECT_EQ(metrics_.join.abandoned.value(), 2);
}

TEST_F(JoinTest, UnlabelledTaskResultsOfOldExecutorsAreFinalWithOutputs) {
  EXPECT_TRUE(result(taskResult("n1", std::nullopt, std::nullopt)).empty());
  EXPECT_TRUE(pod(readyPod("p", 1, "n1")).empty());  // no outputs yet: waits
  const auto plans = result(taskResult("n1", std::nullopt), seconds(1));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());
}

TEST_F(JoinTest, NoTaskResultWithinTheWaitRecordsWithoutOutputs) {
  EXPECT_TRUE(pod(readyPod("p", 1, "n1")).empty());
  EXPECT_TRUE(pod(readyPod("p", 1, "n1"), seconds(60)).empty());  // the wait is not restarted
  EXPECT_TRUE(expire(seconds(119)).empty());
  const auto plans = expire(seconds(120));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), "");
  EXPECT_EQ(metrics_.join.recordedWithoutOutputs.value(), 1);
  EXPECT_EQ(join().waitingPods(), 0u);
}

TEST_F(JoinTest, FinalTaskResultsAreBufferedAfterDeletion) {
  result(taskResult("n1", "true"));
  EXPECT_TRUE(deleted(taskResult("n1", "true"), seconds(1)).empty());
  EXPECT_EQ(join().deletedTaskResults(), 1u);
  EXPECT_EQ(join().liveTaskResults(), 0u);
  EXPECT_EQ(metrics_.join.taskResultsBuffered.value(), 1);
  const auto plans = pod(readyPod("p", 1, "n1"), seconds(30));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());

  // After the retention, a buffered task result is gone.
  result(taskResult("n2", "true"));
  deleted(taskResult("n2", "true"), seconds(10));
  EXPECT_TRUE(expire(seconds(10) + minutes(5)).empty());
  EXPECT_EQ(join().deletedTaskResults(), 0u);
  EXPECT_TRUE(pod(readyPod("q", 2, "n2"), minutes(6)).empty());
  EXPECT_EQ(join().waitingPods(), 1u);
}

TEST_F(JoinTest, ADeleteEventFirstSeenStillCompletesAWaitingPod) {
  EXPECT_TRUE(pod(readyPod("p", 1, "n1")).empty());
  const auto plans = deleted(taskResult("n1", "true"), seconds(2));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());
}

TEST_F(JoinTest, TheDeletedBufferIsCappedOldestFirst) {
  for (int i = 0; i < 5; ++i) {
    const std::string node = testing::numbered("n", i);
    result(taskResult(node, "true"));
    deleted(taskResult(node, "true"), seconds(i));
  }
  EXPECT_EQ(join().deletedTaskResults(), 3u);
  EXPECT_EQ(metrics_.join.bufferEvictions.value(), 2);
  EXPECT_TRUE(pod(readyPod("old", 1, "n0")).empty());  // evicted: waits
  EXPECT_EQ(pod(readyPod("new", 2, "n4")).size(), 1u);
}

// Outputs of about `bytes` bytes (one parameter value).
json outputsOfSize(std::size_t bytes) {
  return {{"parameters", json::array({{{"name", "blob"}, {"value", std::string(bytes, 'x')}}})}};
}

TEST_F(JoinTest, TaskResultsAreKeptWithinTheByteBudget) {
  config_.maxTaskResultBytes = 100'000;
  config_.maxDeletedTaskResults = 1000;
  // A flood of large task results that no pod claims: memory stays within the budget.
  for (int i = 0; i < 50; ++i)
    result(taskResult(testing::numbered("junk", i), "true", outputsOfSize(10'000)));
  EXPECT_LE(join().taskResultBytes(), 100'000u);
  EXPECT_LE(metrics_.join.taskResultBytes.value(), 100'000);
  EXPECT_GE(metrics_.join.outputsDropped.value(), 40);
  EXPECT_EQ(join().liveTaskResults(), 50u);

  // The step whose task result was not kept is never recorded, with or without outputs: not
  // when its pod completes, not when the wait for outputs ends, not from a later event.
  const auto dropped = readyPod("p", 1, testing::numbered("junk", 49));
  EXPECT_TRUE(pod(dropped).empty());
  EXPECT_EQ(metrics_.join.abandoned.value(), 1);
  EXPECT_TRUE(expire(minutes(30)).empty());
  EXPECT_TRUE(pod(dropped, seconds(1)).empty());
  EXPECT_EQ(metrics_.join.recordedWithoutOutputs.value(), 0);
  EXPECT_EQ(join().waitingPods(), 0u);

  // A waiting pod whose task result arrives over the budget is not recorded either.
  EXPECT_TRUE(pod(readyPod("q", 2, "late")).empty());
  EXPECT_TRUE(result(taskResult("late", "true", outputsOfSize(10'000)), seconds(2)).empty());
  // (p's second sighting counted once more: nothing remembers a pod that is not waiting.)
  EXPECT_EQ(metrics_.join.abandoned.value(), 3);
  EXPECT_EQ(join().waitingPods(), 0u);
}

TEST_F(JoinTest, BufferedTaskResultsMakeRoomFirstAndDeletionsFreeTheBudget) {
  config_.maxTaskResultBytes = 50'000;
  config_.maxDeletedTaskResults = 1000;
  for (int i = 0; i < 4; ++i) {
    const std::string node = testing::numbered("n", i);
    result(taskResult(node, "true", outputsOfSize(10'000)));
    deleted(taskResult(node, "true", outputsOfSize(10'000)), seconds(i));
  }
  EXPECT_EQ(join().deletedTaskResults(), 4u);
  // A new live one fits by evicting the oldest buffered one; its step is recorded with outputs.
  const auto big = outputsOfSize(15'000);
  EXPECT_TRUE(result(taskResult("live", "true", big), seconds(5)).empty());
  EXPECT_EQ(metrics_.join.outputsDropped.value(), 0);
  EXPECT_GE(metrics_.join.bufferEvictions.value(), 1);
  EXPECT_LE(join().taskResultBytes(), 50'000u);
  const auto plans = pod(readyPod("p", 1, "live"), seconds(6));
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), big.dump());

  // Once deleted and expired, the bytes are given back.
  deleted(taskResult("live", "true", big), seconds(7));
  EXPECT_TRUE(expire(minutes(30)).empty());
  EXPECT_EQ(join().taskResultBytes(), 0u);
  EXPECT_EQ(metrics_.join.taskResultBytes.value(), 0);
}

TEST_F(JoinTest, ARelistWithoutATaskResultBuffersItAsDeleted) {
  result(taskResult("n1", "true"));
  result(taskResult("n2", "false"));
  join().onTaskResultsListed({"tr-n3"}, t0_);
  EXPECT_EQ(join().deletedTaskResults(), 1u);  // the final one; the in-progress one is dropped
  EXPECT_EQ(join().liveTaskResults(), 0u);
  EXPECT_EQ(pod(readyPod("p", 1, "n1")).size(), 1u);
  EXPECT_TRUE(pod(readyPod("q", 2, "n2")).empty());
}

TEST_F(JoinTest, OldArgoAnnotationWithoutTaskResultIsRecordedAtOnce) {
  auto old = readyPod("p", 1, "n1");
  old["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = kOutputs.dump();
  const auto plans = pod(old);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), kOutputs.dump());
  EXPECT_EQ(metrics_.join.recordedFromAnnotation.value(), 1);

  // 3.5.2+ executors mark the annotation final; until then it is not used.
  auto unfinished = readyPod("q", 2, "n2");
  unfinished["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = kOutputs.dump();
  unfinished["metadata"]["annotations"][kReported] = "false";
  EXPECT_TRUE(pod(unfinished).empty());
  unfinished["metadata"]["annotations"][kReported] = "true";
  EXPECT_EQ(pod(unfinished, seconds(1)).size(), 1u);
  EXPECT_EQ(join().waitingPods(), 0u);
}

TEST_F(JoinTest, PodsWithoutANodeIdTakeTheAnnotationPathAtOnce) {
  auto pod1 = readyPod("p", 1, "");
  pod1["metadata"]["annotations"].erase(kNodeIdAnnotation);
  pod1["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = "{}";
  auto plans = pod(pod1);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), "{}");
  pod1["metadata"]["annotations"].erase("workflows.argoproj.io/outputs");
  plans = pod(pod1);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(argoOutputsOf(plans[0]), "");
  EXPECT_EQ(join().waitingPods(), 0u);
}

TEST_F(JoinTest, PodsThatFailedOrAreLabelledAreNotRecorded) {
  result(taskResult("n1", "true"));
  auto failed = readyPod("p", 1, "n1");
  failed["status"]["containerStatuses"][1]["state"]["terminated"]["exitCode"] = 1;
  EXPECT_TRUE(pod(failed).empty());
  EXPECT_EQ(join().waitingPods(), 0u);

  EXPECT_TRUE(pod(readyPod("q", 2, "n2")).empty());
  auto labelled = readyPod("q", 2, "n2");
  labelled["metadata"]["labels"]["pipelines.kubeflow.org/cache_id"] = "5";
  EXPECT_TRUE(pod(labelled).empty());
  EXPECT_EQ(join().waitingPods(), 0u);
  EXPECT_TRUE(result(taskResult("n2", "true")).empty());
}

TEST_F(JoinTest, TaskResultAndAnnotationGiveTheSameEntry) {
  result(taskResult("n1", "true"));
  const auto fromTaskResult = pod(readyPod("p", 1, "n1")).at(0);
  auto old = readyPod("p", 1, "");
  old["metadata"]["annotations"].erase(kNodeIdAnnotation);
  old["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = kOutputs.dump();
  const auto fromAnnotation = pod(old).at(0);
  EXPECT_EQ(fromTaskResult.entry.executionOutput, fromAnnotation.entry.executionOutput);
  EXPECT_EQ(fromTaskResult.entry.key, fromAnnotation.entry.key);
  EXPECT_EQ(fromTaskResult.entry.executionTemplate, fromAnnotation.entry.executionTemplate);
}

TEST(TaskResult, ReadsNodeReportStateAndOutputs) {
  const auto view = readTaskResult(taskResult("wf-1-123", "true"));
  ASSERT_TRUE(view);
  EXPECT_EQ(view->namespaceName, "ns");
  EXPECT_EQ(view->nodeId, "wf-1-123");
  EXPECT_EQ(view->trackingId, "tr-wf-1-123");
  EXPECT_EQ(view->report, ReportState::kCompleted);
  EXPECT_EQ(view->outputs, kOutputs.dump());
  EXPECT_TRUE(isFinal(*view));

  EXPECT_EQ(readTaskResult(taskResult("n", "false"))->report, ReportState::kInProgress);
  EXPECT_FALSE(isFinal(*readTaskResult(taskResult("n", "false"))));
  auto odd = taskResult("n", std::nullopt);
  odd["metadata"]["labels"][kReported] = 1;
  EXPECT_EQ(readTaskResult(odd)->report, ReportState::kInProgress);

  const auto empty = readTaskResult(taskResult("n", "true", std::nullopt));
  EXPECT_FALSE(empty->outputs);
  EXPECT_TRUE(isFinal(*empty));
  EXPECT_EQ(recordedOutputs(*empty), "{}");
  EXPECT_FALSE(isFinal(*readTaskResult(taskResult("n", std::nullopt, std::nullopt))));
  EXPECT_TRUE(isFinal(*readTaskResult(taskResult("n", std::nullopt))));

  // Only exitCode: the executor reported nothing.
  EXPECT_EQ(readTaskResult(taskResult("n", "true", json::object()))->outputs, "{}");
  EXPECT_FALSE(readTaskResult(json::object()));
  EXPECT_FALSE(readTaskResult(R"({"metadata":{"name":"n"}})"_json));
  auto notAnObject = taskResult("n", "true");
  notAnObject["outputs"] = "x";
  notAnObject["metadata"]["labels"] = 5;
  EXPECT_FALSE(readTaskResult(notAnObject)->outputs);
  EXPECT_EQ(readTaskResult(notAnObject)->report, ReportState::kUnlabelled);
}

TEST(TaskResult, SelectorExcludesKcacheReplays) {
  EXPECT_EQ(taskResultSelector(),
            "workflows.argoproj.io/workflow,!kcache.kubeflow.org/replayed-from");
}

}  // namespace
}  // namespace kcache::watcher
