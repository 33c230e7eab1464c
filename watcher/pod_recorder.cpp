#include "watcher/pod_recorder.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/execution_key.h"
#include "core/logging.h"
#include "core/offloaded_template.h"
#include "core/pod_contract.h"

namespace kcache::watcher {
namespace {

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

PodRecorder::PodRecorder(store::CacheRecorder& store, kube::KubeApi& api, RecorderConfig config,
                         WatcherMetrics& metrics, Clock clock)
    : store_(store),
      api_(api),
      config_(std::move(config)),
      metrics_(metrics),
      clock_(clock ? std::move(clock) : Clock(unixNow)) {}

PodRecorder::~PodRecorder() {
  stop();
}

void PodRecorder::start() {
  if (worker_.joinable()) return;
  worker_ = std::jthread([this](std::stop_token stop) { runWorker(stop); });
}

void PodRecorder::stop() {
  if (!worker_.joinable()) return;
  worker_.request_stop();
  worker_.join();
  worker_ = std::jthread();
  std::lock_guard lock(mutex_);
  for (const auto& [id, work] : queue_) known_.erase(id);
  queue_.clear();
}

size_t PodRecorder::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void PodRecorder::enqueue(RecordingPlan plan) {
  const std::string id = trackingId(plan.pod);
  plan.entry.recordedAtInSec = clock_();
  std::lock_guard lock(mutex_);
  if (!known_.emplace(id, State::kQueued).second) return;  // queued or labelled already
  const auto now = std::chrono::steady_clock::now();
  Work work{std::move(plan), std::nullopt, 0, Backoff(config_.retryBackoff), now, now, false};
  queue_.emplace(id, std::move(work));
  wakeUp_.notify_all();
}

void PodRecorder::onPodLabelled(const PodIdentity& pod) {
  std::lock_guard lock(mutex_);
  if (const auto it = known_.find(trackingId(pod));
      it != known_.end() && it->second == State::kLabelled) {
    known_.erase(it);
  }
}

void PodRecorder::onPodDeleted(const PodIdentity& pod) {
  std::lock_guard lock(mutex_);
  const auto it = known_.find(trackingId(pod));
  // A queued pod is kept: its outputs are still worth recording, only the patch will fail.
  if (it != known_.end() && it->second == State::kLabelled) known_.erase(it);
}

void PodRecorder::onListed(const std::set<std::string>& trackingIds) {
  std::lock_guard lock(mutex_);
  for (auto it = known_.begin(); it != known_.end();) {
    // Queued pods stay: their outputs are worth recording even if the pod is gone.
    if (it->second == State::kLabelled && trackingIds.count(it->first) == 0) {
      it = known_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t PodRecorder::tracked() const {
  std::lock_guard lock(mutex_);
  return known_.size();
}

void PodRecorder::runWorker(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    auto next = queue_.end();
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (!it->second.inFlight && (next == queue_.end() || it->second.due < next->second.due)) {
        next = it;
      }
    }
    if (next == queue_.end()) {
      wakeUp_.wait(lock, stop, [this] {
        return std::any_of(queue_.begin(), queue_.end(),
                           [](const auto& item) { return !item.second.inFlight; });
      });
      continue;
    }
    if (next->second.due > std::chrono::steady_clock::now()) {
      const auto due = next->second.due;
      wakeUp_.wait_until(lock, stop, due, [] { return false; });
      continue;
    }
    next->second.inFlight = true;
    const std::string id = next->first;
    Work work = next->second;
    lock.unlock();
    process(id, std::move(work));
    lock.lock();
  }
}

core::Expected<std::string, SkipReason> PodRecorder::readOffloadedTemplate(
    const RecordingPlan& plan) {
  if (!config_.readOffloadedTemplates) return core::Unexpected(SkipReason::kTemplateOffloaded);
  const PodIdentity& pod = plan.pod;
  const auto configMap = api_.get(kube::resources::kConfigMaps, pod.namespaceName, pod.name);
  if (!configMap) return core::Unexpected(SkipReason::kNoTemplate);
  auto argoTemplate = core::offloadedTemplateOf(*configMap, plan.workflowUid);
  if (!argoTemplate) {
    spdlog::debug("watcher: config map {}/{} not used: {}", core::logValue(pod.namespaceName),
                  core::logValue(pod.name), argoTemplate.error());
    return core::Unexpected(SkipReason::kTemplateNotOwned);
  }
  return std::move(argoTemplate).value();
}

void PodRecorder::process(const std::string& id, Work work) {
  const PodIdentity& pod = work.plan.pod;
  if (work.plan.templateOffloaded) {
    // The key was not checked when the pod was planned: its template is in the pod's ConfigMap.
    const PodIdentity identity = pod;  // `work.plan` is moved below
    std::optional<core::Expected<std::string, SkipReason>> argoTemplate;
    try {
      argoTemplate.emplace(readOffloadedTemplate(work.plan));
    } catch (const std::exception& e) {
      retryLater(id, std::move(work),
                 std::string("reading the offloaded template failed: ") + e.what());
      return;
    }
    auto verified =
        *argoTemplate
            ? verifyOffloadedKey(std::move(work.plan), argoTemplate->value(), config_.scope)
            : core::Expected<RecordingPlan, SkipReason>(core::Unexpected(argoTemplate->error()));
    if (!verified) {
      metrics_.join.refusals.note(identity, verified.error());
      forget(id);
      return;
    }
    work.plan = std::move(*verified);
  }
  if (!work.entryId) {
    try {
      const store::RecordResult recorded = store_.recordEntry(config_.scope, work.plan.entry);
      work.entryId = recorded.entryId;
      if (recorded.outcome == store::RecordOutcome::kKept) {
        // First fresh writer wins: the pod is labelled with the entry that stays.
        metrics_.recordsKept.inc();
        spdlog::info("watcher: pod {}/{} key {} not written, {} (entry {})", pod.namespaceName,
                     pod.name, core::keyPreview(work.plan.entry.key),
                     store::toString(recorded.outcome), *work.entryId);
      } else {
        metrics_.entriesRecorded.inc();
        spdlog::info("watcher: recorded pod {}/{} key {} as entry {} ({})", pod.namespaceName,
                     pod.name, core::keyPreview(work.plan.entry.key), *work.entryId,
                     store::toString(recorded.outcome));
      }
    } catch (const std::exception& e) {
      metrics_.recordFailures.inc();
      retryLater(id, std::move(work), std::string("store write failed: ") + e.what());
      return;
    }
  }
  try {
    api_.mergePatch(kube::resources::kPods, pod.namespaceName, pod.name,
                    cacheIdPatch(pod, *work.entryId));
    metrics_.patches.inc();
    metrics_.queuedToLabelled.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - work.queuedAt).count());
  } catch (const kube::KubeApiError& e) {
    if (e.status() == 404 || e.status() == 409) {
      // The pod is gone or was replaced: the entry stays recorded, there is nothing to label.
      spdlog::info("watcher: pod {}/{} not labelled with entry {}: {}", pod.namespaceName, pod.name,
                   *work.entryId, e.what());
      forget(id);
      return;
    }
    metrics_.patchFailures.inc();
    retryLater(id, std::move(work), e.what());
    return;
  } catch (const std::exception& e) {
    metrics_.patchFailures.inc();
    retryLater(id, std::move(work), e.what());
    return;
  }
  std::lock_guard lock(mutex_);
  queue_.erase(id);
  if (auto it = known_.find(id); it != known_.end()) it->second = State::kLabelled;
}

void PodRecorder::retryLater(const std::string& id, Work work, const std::string& why) {
  const PodIdentity& pod = work.plan.pod;
  ++work.attempts;
  if (work.attempts >= config_.maxAttempts) {
    spdlog::error("watcher: giving up on pod {}/{} after {} attempts: {}", pod.namespaceName,
                  pod.name, work.attempts, why);
    forget(id);
    return;
  }
  const auto delay = work.backoff.next();
  spdlog::warn("watcher: pod {}/{} attempt {} failed, retrying in {} ms: {}", pod.namespaceName,
               pod.name, work.attempts, delay.count(), why);
  work.due = std::chrono::steady_clock::now() + delay;
  work.inFlight = false;
  std::lock_guard lock(mutex_);
  if (auto it = queue_.find(id); it != queue_.end()) it->second = std::move(work);
  wakeUp_.notify_all();
}

void PodRecorder::forget(const std::string& id) {
  std::lock_guard lock(mutex_);
  queue_.erase(id);
  known_.erase(id);
}

}  // namespace kcache::watcher
