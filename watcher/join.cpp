#include "watcher/join.h"

#include <spdlog/spdlog.h>

namespace kcache::watcher {

OutputsJoin::OutputsJoin(JoinConfig config, RecordingRules rules, JoinMetrics& metrics)
    : config_(config), rules_(std::move(rules)), metrics_(metrics) {}

std::string OutputsJoin::joinKey(const std::string& namespaceName, const std::string& nodeId) {
  return namespaceName + "/" + nodeId;
}

RecordingPlan OutputsJoin::joined(RecordingPlan plan, const TaskResultView& taskResult) {
  setOutputs(plan, recordedOutputs(taskResult));
  metrics_.joins.inc();
  metrics_.recordedFromTaskResult.inc();
  return plan;
}

std::vector<RecordingPlan> OutputsJoin::onPod(const nlohmann::json& pod, TimePoint now) {
  std::vector<RecordingPlan> ready;
  auto plan = planPodRecording(pod, rules_, 0);
  if (!plan) {
    const PodIdentity identity = identityOf(pod);
    if (plan.error() == SkipReason::kAlreadyLabelled) {
      // Recorded (or a hit) meanwhile: nothing left to wait for.
      if (const std::string nodeId = nodeIdOf(pod); !nodeId.empty()) {
        waiting_.erase(joinKey(identity.namespaceName, nodeId));
        updateGauges();
      }
    } else if (plan.error() != SkipReason::kNotSucceeded) {
      metrics_.refusals.note(identity, plan.error());
    }
    return ready;
  }
  if (plan->nodeId.empty()) {
    // No node id, no task result to wait for: the annotation path, as before task results.
    const auto annotation = annotationOutputs(pod);
    setOutputs(*plan, annotation.value_or(""));
    (annotation ? metrics_.recordedFromAnnotation : metrics_.recordedWithoutOutputs).inc();
    ready.push_back(std::move(*plan));
    return ready;
  }
  const std::string key = joinKey(plan->pod.namespaceName, plan->nodeId);
  const auto taskResult = taskResults_.find(key);
  if (taskResult != taskResults_.end() && isFinal(taskResult->second.view)) {
    waiting_.erase(key);
    ready.push_back(joined(std::move(*plan), taskResult->second.view));
    updateGauges();
    return ready;
  }
  const bool inProgress = taskResult != taskResults_.end() &&
                          taskResult->second.view.report == ReportState::kInProgress;
  if (!inProgress) {
    if (auto annotation = annotationOutputs(pod)) {
      // The executor fell back to the pod annotation (Argo <= 3.5 without task result RBAC).
      waiting_.erase(key);
      setOutputs(*plan, *annotation);
      metrics_.recordedFromAnnotation.inc();
      ready.push_back(std::move(*plan));
      updateGauges();
      return ready;
    }
  }
  if (const auto it = waiting_.find(key); it != waiting_.end()) {
    it->second.plan = std::move(*plan);  // keeps waiting since the first sighting
  } else {
    waiting_.emplace(key, WaitingPod{std::move(*plan), now});
  }
  updateGauges();
  return ready;
}

std::vector<RecordingPlan> OutputsJoin::onTaskResult(const nlohmann::json& taskResult,
                                                     TimePoint /*now*/) {
  std::vector<RecordingPlan> ready;
  auto view = readTaskResult(taskResult);
  if (!view) return ready;
  const std::string key = joinKey(view->namespaceName, view->nodeId);
  KnownTaskResult& known = taskResults_[key];
  if (known.deleted) {
    known.deleted = false;  // re-created under the same name; its stale order entry is skipped
    --deletedCount_;
  }
  known.view = std::move(*view);
  if (const auto it = waiting_.find(key); it != waiting_.end() && isFinal(known.view)) {
    ready.push_back(joined(std::move(it->second.plan), known.view));
    waiting_.erase(it);
  }
  updateGauges();
  return ready;
}

std::vector<RecordingPlan> OutputsJoin::onTaskResultDeleted(const nlohmann::json& taskResult,
                                                            TimePoint now) {
  std::vector<RecordingPlan> ready;
  auto view = readTaskResult(taskResult);
  if (!view) return ready;
  const std::string key = joinKey(view->namespaceName, view->nodeId);
  auto it = taskResults_.find(key);
  if (it != taskResults_.end() && it->second.deleted) return ready;
  // The DELETE event carries the last state, which a dropped watch may not have shown before.
  if (it == taskResults_.end()) it = taskResults_.emplace(key, KnownTaskResult{}).first;
  it->second.view = std::move(*view);
  if (const auto pod = waiting_.find(key); pod != waiting_.end() && isFinal(it->second.view)) {
    ready.push_back(joined(std::move(pod->second.plan), it->second.view));
    waiting_.erase(pod);
  }
  forgetDeleted(it, now);
  updateGauges();
  return ready;
}

void OutputsJoin::onTaskResultsListed(const std::set<std::string>& trackingIds, TimePoint now) {
  std::vector<std::string> gone;
  for (const auto& [key, known] : taskResults_) {
    if (!known.deleted && trackingIds.count(known.view.trackingId) == 0) gone.push_back(key);
  }
  for (const auto& key : gone) {
    const auto it = taskResults_.find(key);
    // A final task result that vanished while the watch was down: buffered like a DELETE.
    if (it != taskResults_.end()) forgetDeleted(it, now);
  }
  updateGauges();
}

void OutputsJoin::forgetDeleted(std::map<std::string, KnownTaskResult>::iterator it,
                                TimePoint now) {
  if (!isFinal(it->second.view)) {
    const auto pod = waiting_.find(it->first);
    if (pod != waiting_.end() && it->second.view.report == ReportState::kInProgress) {
      abandon(pod, "its task result was deleted before it was final");
    }
    taskResults_.erase(it);
    return;
  }
  it->second.deleted = true;
  it->second.deletedAt = now;
  ++deletedCount_;
  deletedOrder_.emplace_back(now, it->first);
  while (deletedCount_ > config_.maxDeletedTaskResults && !deletedOrder_.empty()) {
    const auto [deletedAt, key] = deletedOrder_.front();
    deletedOrder_.pop_front();
    const auto oldest = taskResults_.find(key);
    if (oldest == taskResults_.end() || !oldest->second.deleted ||
        oldest->second.deletedAt != deletedAt) {
      continue;  // re-created or already gone since
    }
    taskResults_.erase(oldest);
    --deletedCount_;
    metrics_.bufferEvictions.inc();
  }
}

std::vector<RecordingPlan> OutputsJoin::expire(TimePoint now) {
  while (!deletedOrder_.empty() && now - deletedOrder_.front().first >= config_.deletedRetention) {
    const auto [deletedAt, key] = deletedOrder_.front();
    deletedOrder_.pop_front();
    const auto it = taskResults_.find(key);
    if (it != taskResults_.end() && it->second.deleted && it->second.deletedAt == deletedAt) {
      taskResults_.erase(it);
      --deletedCount_;
    }
  }
  std::vector<RecordingPlan> ready;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const auto taskResult = taskResults_.find(it->first);
    const auto waited = now - it->second.since;
    if (taskResult != taskResults_.end() &&
        taskResult->second.view.report == ReportState::kInProgress) {
      if (waited >= config_.inProgressWait) {
        it = abandon(it, "its task result stayed in progress");
      } else {
        ++it;
      }
    } else if (waited >= config_.taskResultWait) {
      const PodIdentity& pod = it->second.plan.pod;
      spdlog::info(
          "watcher: no task result for pod {}/{} (node {}) within {} s, recording it without "
          "outputs",
          pod.namespaceName, pod.name, it->second.plan.nodeId,
          std::chrono::duration_cast<std::chrono::seconds>(config_.taskResultWait).count());
      setOutputs(it->second.plan, "");
      metrics_.recordedWithoutOutputs.inc();
      ready.push_back(std::move(it->second.plan));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  updateGauges();
  return ready;
}

std::map<std::string, OutputsJoin::WaitingPod>::iterator OutputsJoin::abandon(
    std::map<std::string, WaitingPod>::iterator it, const std::string& why) {
  const PodIdentity& pod = it->second.plan.pod;
  spdlog::warn("watcher: not recording pod {}/{} (node {}): {}", pod.namespaceName, pod.name,
               it->second.plan.nodeId, why);
  metrics_.abandoned.inc();
  return waiting_.erase(it);
}

void OutputsJoin::updateGauges() {
  metrics_.taskResultsLive.set(static_cast<double>(liveTaskResults()));
  metrics_.taskResultsBuffered.set(static_cast<double>(deletedCount_));
  metrics_.podsWaiting.set(static_cast<double>(waiting_.size()));
}

}  // namespace kcache::watcher
