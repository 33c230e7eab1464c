#pragma once
// Joins Argo's task results to the pods they belong to (docs/watcher.md, "The join with task
// results"), without I/O: callers feed it what the two informers see and the time, and get back the
// steps to record. Join key: (namespace, node id); the task result's name is the node id, and the
// pod carries it in annotation workflows.argoproj.io/node-id. Pod names are never derived.
//
// A ready pod (planPodRecording) is recorded
//  - with its task result's outputs, once that task result is final (isFinal);
//  - else, when no task result is known for it, with its usable outputs annotation (old Argo);
//  - else, after `taskResultWait` without a task result, with no outputs (""), as the annotation
//    path always did for a pod without the annotation;
//  - never, when its task result stays in progress ("false") for `inProgressWait` or is deleted
//    in progress.
// Pods without a node id annotation cannot have a task result: the annotation path at once.
// Final task results are kept for `deletedRetention` after their DELETE event, because Argo
// deletes them all when the workflow completes, possibly before the pod event is seen.
// What is kept is bounded in bytes (`maxTaskResultBytes`): anyone who can create task results in
// a watched namespace could otherwise make the leader keep gigabytes of outputs. Over the budget,
// buffered (deleted) task results go first, oldest first; then a task result is kept without its
// outputs, and its pod is not recorded (never recorded with outputs that are not its own).
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/logging.h"
#include "core/staleness.h"
#include "watcher/recording_plan.h"
#include "watcher/task_result.h"
#include "watcher/watcher_metrics.h"

namespace kcache::watcher {

struct JoinConfig {
  // How long a ready pod waits for a task result that has not appeared (the task result event
  // may arrive after the pod event); then it is recorded without outputs.
  std::chrono::milliseconds taskResultWait{std::chrono::minutes(2)};
  // How long a ready pod waits for a task result labelled in progress to become final (Argo
  // 3.7's own timeout for this is 10 minutes); then it is not recorded.
  std::chrono::milliseconds inProgressWait{std::chrono::minutes(10)};
  // How long a final task result is kept after its DELETE event.
  std::chrono::milliseconds deletedRetention{std::chrono::minutes(5)};
  // At most this many deleted task results are kept; the oldest go first.
  size_t maxDeletedTaskResults = 10000;
  // --- Bounded under attack (issue 13) ---
  // --max-task-result-bytes: the bytes of task result outputs kept in memory.
  size_t maxTaskResultBytes = size_t{64} << 20;
};

class OutputsJoin {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  OutputsJoin(JoinConfig config, RecordingRules rules, JoinMetrics& metrics);

  // A pod state (listed, ADDED or MODIFIED). Returns the plan when the pod can be recorded now.
  // The plans' recordedAtInSec is left 0: PodRecorder::enqueue stamps it.
  std::vector<RecordingPlan> onPod(const nlohmann::json& pod, TimePoint now);

  // A task result state (listed, ADDED or MODIFIED): returns the pods it completes.
  std::vector<RecordingPlan> onTaskResult(const nlohmann::json& taskResult, TimePoint now);
  // A DELETE event: its last state may still complete a waiting pod.
  std::vector<RecordingPlan> onTaskResultDeleted(const nlohmann::json& taskResult, TimePoint now);
  // After a complete list of task results: those not in it were deleted meanwhile.
  void onTaskResultsListed(const std::set<std::string>& trackingIds, TimePoint now);

  // Ends the waits and retentions that are over; returns the pods recorded without outputs.
  std::vector<RecordingPlan> expire(TimePoint now);

  size_t waitingPods() const { return waiting_.size(); }
  size_t liveTaskResults() const { return taskResults_.size() - deletedCount_; }
  size_t deletedTaskResults() const { return deletedCount_; }
  size_t taskResultBytes() const { return keptBytes_; }

 private:
  struct KnownTaskResult {
    TaskResultView view;
    bool deleted = false;
    TimePoint deletedAt{};
    size_t bytes = 0;             // of its outputs, counted in keptBytes_
    bool outputsDropped = false;  // over the byte budget: its pod is not recorded
  };
  struct WaitingPod {
    RecordingPlan plan;
    TimePoint since;
  };

  static std::string joinKey(const std::string& namespaceName, const std::string& nodeId);
  RecordingPlan joined(RecordingPlan plan, const TaskResultView& taskResult);
  void forgetDeleted(std::map<std::string, KnownTaskResult>::iterator it, TimePoint now);
  std::map<std::string, WaitingPod>::iterator abandon(
      std::map<std::string, WaitingPod>::iterator it, const std::string& why);
  void updateGauges();
  // Stores `view` in `known` within the byte budget (evicting buffered task results, else
  // dropping its outputs).
  void keep(const std::string& key, KnownTaskResult& known, TaskResultView view);
  void erase(std::map<std::string, KnownTaskResult>::iterator it);
  // Drops the oldest buffered task results until `needed` more bytes fit; false when they do not.
  bool makeRoom(size_t needed, const std::string& keep);

  JoinConfig config_;
  RecordingRules rules_;
  JoinMetrics& metrics_;
  std::map<std::string, KnownTaskResult> taskResults_;          // by join key, live and deleted
  std::deque<std::pair<TimePoint, std::string>> deletedOrder_;  // oldest deletion first
  size_t deletedCount_ = 0;
  std::map<std::string, WaitingPod> waiting_;  // ready pods, by join key
  size_t keptBytes_ = 0;                       // sum of KnownTaskResult::bytes
  // Warnings an attacker can cause at will (outputs dropped, steps abandoned).
  core::LogRateLimiter warnings_{5, std::chrono::seconds(60)};
};

}  // namespace kcache::watcher
