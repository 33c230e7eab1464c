#include "watcher/join.h"

#include <spdlog/spdlog.h>

namespace kcache::watcher {
namespace {

constexpr std::string_view kOutputsDropped =
    "its task result's outputs were not kept (--max-task-result-bytes reached)";

// What counts against the budget: the outputs, the part whose size the task result's author
// chooses. The rest (names, a few hundred bytes) grows with the number of task results, which the
// API server bounds (a ResourceQuota on count/workflowtaskresults.argoproj.io can too).
size_t bytesOf(const TaskResultView& view) {
  return view.outputs ? view.outputs->size() : 0;
}

}  // namespace

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
  if (taskResult != taskResults_.end() && taskResult->second.outputsDropped) {
    auto [it, inserted] = waiting_.try_emplace(key, WaitingPod{std::move(*plan), now});
    if (!inserted) it->second.plan = std::move(*plan);
    abandon(it, std::string(kOutputsDropped));
    updateGauges();
    return ready;
  }
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
  keep(key, known, std::move(*view));
  if (const auto it = waiting_.find(key); it != waiting_.end() && known.outputsDropped) {
    abandon(it, std::string(kOutputsDropped));
  } else if (it != waiting_.end() && isFinal(known.view)) {
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
  keep(key, it->second, std::move(*view));
  if (const auto pod = waiting_.find(key); pod != waiting_.end() && it->second.outputsDropped) {
    abandon(pod, std::string(kOutputsDropped));
  } else if (pod != waiting_.end() && isFinal(it->second.view)) {
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
    erase(it);
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
    erase(oldest);
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
      erase(it);
      --deletedCount_;
    }
  }
  std::vector<RecordingPlan> ready;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const auto taskResult = taskResults_.find(it->first);
    const auto waited = now - it->second.since;
    if (taskResult != taskResults_.end() && taskResult->second.outputsDropped) {
      it = abandon(it, std::string(kOutputsDropped));
    } else if (taskResult != taskResults_.end() &&
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
          pod.namespaceName, pod.name, core::logValue(it->second.plan.nodeId),
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
  if (const auto suppressed = warnings_.admit()) {
    spdlog::warn("watcher: not recording pod {}/{} (node {}): {}{}",
                 core::logValue(pod.namespaceName), core::logValue(pod.name),
                 core::logValue(it->second.plan.nodeId), why,
                 core::LogRateLimiter::suppressedNote(*suppressed));
  }
  metrics_.abandoned.inc();
  return waiting_.erase(it);
}

void OutputsJoin::keep(const std::string& key, KnownTaskResult& known, TaskResultView view) {
  keptBytes_ -= known.bytes;
  known.bytes = 0;
  known.outputsDropped = false;
  size_t bytes = bytesOf(view);
  if (keptBytes_ + bytes > config_.maxTaskResultBytes && !makeRoom(bytes, key)) {
    metrics_.outputsDropped.inc();
    if (const auto suppressed = warnings_.admit()) {
      spdlog::warn(
          "watcher: the outputs of task result {} ({} bytes) are not kept: "
          "--max-task-result-bytes={} is reached; its step is not recorded{}",
          core::logValue(key), view.outputs ? view.outputs->size() : 0, config_.maxTaskResultBytes,
          core::LogRateLimiter::suppressedNote(*suppressed));
    }
    view.outputs.reset();
    known.outputsDropped = true;
    bytes = bytesOf(view);
  }
  known.view = std::move(view);
  known.bytes = bytes;
  keptBytes_ += bytes;
}

bool OutputsJoin::makeRoom(size_t needed, const std::string& keepKey) {
  while (keptBytes_ + needed > config_.maxTaskResultBytes && !deletedOrder_.empty()) {
    const auto [deletedAt, key] = deletedOrder_.front();
    deletedOrder_.pop_front();
    const auto oldest = taskResults_.find(key);
    if (key == keepKey || oldest == taskResults_.end() || !oldest->second.deleted ||
        oldest->second.deletedAt != deletedAt) {
      continue;  // re-created or already gone since
    }
    erase(oldest);
    --deletedCount_;
    metrics_.bufferEvictions.inc();
  }
  return keptBytes_ + needed <= config_.maxTaskResultBytes;
}

void OutputsJoin::erase(std::map<std::string, KnownTaskResult>::iterator it) {
  keptBytes_ -= it->second.bytes;
  taskResults_.erase(it);
}

void OutputsJoin::updateGauges() {
  metrics_.taskResultsLive.set(static_cast<double>(liveTaskResults()));
  metrics_.taskResultsBuffered.set(static_cast<double>(deletedCount_));
  metrics_.podsWaiting.set(static_cast<double>(waiting_.size()));
  metrics_.taskResultBytes.set(static_cast<double>(keptBytes_));
}

}  // namespace kcache::watcher
