#include "watcher/step_joiner.h"

namespace kcache::watcher {
namespace {

std::chrono::steady_clock::time_point now() {
  return std::chrono::steady_clock::now();
}

}  // namespace

StepJoiner::StepJoiner(PodRecorder& recorder, JoinConfig config, RecordingRules rules,
                       JoinMetrics& metrics, std::chrono::milliseconds tickInterval)
    : recorder_(recorder), tickInterval_(tickInterval), join_(config, std::move(rules), metrics) {}

StepJoiner::~StepJoiner() {
  stop();
}

void StepJoiner::start() {
  if (ticker_.joinable()) return;
  ticker_ = std::jthread([this](std::stop_token stop) {
    while (sleepFor(tickInterval_, stop)) {
      std::vector<RecordingPlan> ready;
      {
        std::lock_guard lock(mutex_);
        ready = join_.expire(now());
      }
      hand(std::move(ready));
    }
  });
}

void StepJoiner::stop() {
  if (!ticker_.joinable()) return;
  ticker_.request_stop();
  ticker_.join();
  ticker_ = std::jthread();
}

size_t StepJoiner::waitingPods() const {
  std::lock_guard lock(mutex_);
  return join_.waitingPods();
}

size_t StepJoiner::deletedTaskResults() const {
  std::lock_guard lock(mutex_);
  return join_.deletedTaskResults();
}

void StepJoiner::hand(std::vector<RecordingPlan> plans) {
  for (auto& plan : plans) recorder_.enqueue(std::move(plan));
}

void StepJoiner::PodHandler::onObject(const nlohmann::json& pod) {
  if (!cacheIdLabel(pod).value_or("").empty()) joiner_.recorder_.onPodLabelled(identityOf(pod));
  std::vector<RecordingPlan> ready;
  {
    std::lock_guard lock(joiner_.mutex_);
    ready = joiner_.join_.onPod(pod, now());
  }
  joiner_.hand(std::move(ready));
}

void StepJoiner::PodHandler::onDeleted(const nlohmann::json& pod) {
  // A ready pod keeps waiting for its task result: podGC may delete it right after it succeeded.
  joiner_.recorder_.onPodDeleted(identityOf(pod));
}

void StepJoiner::PodHandler::onListed(const std::set<std::string>& trackingIds) {
  joiner_.recorder_.onListed(trackingIds);
}

void StepJoiner::TaskResultHandler::onObject(const nlohmann::json& taskResult) {
  std::vector<RecordingPlan> ready;
  {
    std::lock_guard lock(joiner_.mutex_);
    ready = joiner_.join_.onTaskResult(taskResult, now());
  }
  joiner_.hand(std::move(ready));
}

void StepJoiner::TaskResultHandler::onDeleted(const nlohmann::json& taskResult) {
  std::vector<RecordingPlan> ready;
  {
    std::lock_guard lock(joiner_.mutex_);
    ready = joiner_.join_.onTaskResultDeleted(taskResult, now());
  }
  joiner_.hand(std::move(ready));
}

void StepJoiner::TaskResultHandler::onListed(const std::set<std::string>& trackingIds) {
  std::lock_guard lock(joiner_.mutex_);
  joiner_.join_.onTaskResultsListed(trackingIds, now());
}

}  // namespace kcache::watcher
