#include "watcher/watcher_service.h"

#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include "watcher/step_joiner.h"
#include "watcher/task_result.h"

namespace kcache::watcher {

WatcherService::WatcherService(std::shared_ptr<kube::KubeApi> api, WatcherConfig config,
                               store::CacheRecorder& store, std::function<void()> garbageCollect,
                               core::MetricsRegistry& metrics)
    : api_(std::move(api)),
      config_(std::move(config)),
      store_(store),
      garbageCollect_(std::move(garbageCollect)),
      metrics_(metrics) {
  if (config_.recorder.admissionStamps == nullptr) {
    // Without the secret every pod with a cache_id label would be taken at its word.
    throw std::invalid_argument(
        "the watcher needs the admission stamp secret to tell the pods kcache admitted");
  }
  if (config_.leaderElection) {
    elector_ = std::make_unique<LeaderElector>(*api_, config_.election, metrics_);
  }
}

WatcherService::~WatcherService() {
  stop();
}

void WatcherService::start() {
  if (thread_.joinable()) return;
  thread_ = std::jthread([this](std::stop_token stop) {
    if (elector_) {
      elector_->run(stop, [this](std::stop_token leadStop) { lead(leadStop); });
    } else {
      leadingWithoutElection_ = true;
      metrics_.leader.set(1);
      lead(stop);
      metrics_.leader.set(0);
      leadingWithoutElection_ = false;
    }
  });
}

void WatcherService::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
  thread_ = std::jthread();
}

bool WatcherService::isLeader() const {
  return elector_ ? elector_->isLeader() : leadingWithoutElection_.load();
}

int64_t WatcherService::completedLists() const {
  std::lock_guard lock(informerMutex_);
  return informer_ ? informer_->completedLists() : 0;
}

int64_t WatcherService::completedTaskResultLists() const {
  std::lock_guard lock(informerMutex_);
  return taskResultInformer_ ? taskResultInformer_->completedLists() : 0;
}

void WatcherService::lead(std::stop_token stop) {
  spdlog::info(
      "watcher: starting to watch tagged pods in {}",
      config_.informer.namespaceName.empty() ? "all namespaces" : config_.informer.namespaceName);
  PodRecorder recorder(store_, *api_, config_.recorder, metrics_);
  recorder.start();
  RecordingRules rules(config_.recorder.staleness, config_.recorder.scope);
  rules.readOffloadedTemplates = config_.recorder.readOffloadedTemplates;
  rules.clusterScopeWriters = config_.recorder.clusterScopeWriters;
  rules.admissionStamps = config_.recorder.admissionStamps;
  StepJoiner joiner(recorder, config_.join, std::move(rules), metrics_.join);
  joiner.start();
  Informer informer(*api_, config_.informer, joiner.pods(), metrics_.pods);
  std::optional<Informer> taskResultInformer;
  if (config_.watchTaskResults) {
    InformerConfig taskResults = config_.informer;
    taskResults.resource = kube::resources::kWorkflowTaskResults;
    taskResults.kind = "WorkflowTaskResult";
    taskResults.labelSelector = taskResultSelector();
    // A task result may hold up to etcd's ~1.5 MiB of outputs: smaller pages bound what one list
    // response holds in memory (issue 13).
    taskResults.pageSize = std::min<int64_t>(taskResults.pageSize, 50);
    taskResultInformer.emplace(*api_, taskResults, joiner.taskResults(), metrics_.taskResults);
  }
  {
    std::lock_guard lock(informerMutex_);
    informer_ = &informer;
    taskResultInformer_ = taskResultInformer ? &*taskResultInformer : nullptr;
  }
  std::jthread taskResultThread;
  if (taskResultInformer) {
    taskResultThread = std::jthread(
        [&taskResultInformer](std::stop_token trStop) { taskResultInformer->run(trStop); });
  }
  std::jthread collector;
  if (garbageCollect_ && config_.gcInterval.count() > 0) {
    collector = std::jthread([this](std::stop_token gcStop) {
      while (sleepFor(config_.gcInterval, gcStop)) {
        metrics_.gcRuns.inc();
        try {
          garbageCollect_();
        } catch (const std::exception& e) {
          metrics_.gcFailures.inc();
          spdlog::error("watcher: garbage collection failed: {}", e.what());
        }
      }
    });
  }
  informer.run(stop);
  if (taskResultThread.joinable()) {
    taskResultThread.request_stop();
    taskResultThread.join();
  }
  {
    std::lock_guard lock(informerMutex_);
    informer_ = nullptr;
    taskResultInformer_ = nullptr;
  }
  if (collector.joinable()) {
    collector.request_stop();
    collector.join();
  }
  joiner.stop();
  recorder.stop();
  spdlog::info("watcher: stopped watching");
}

}  // namespace kcache::watcher
