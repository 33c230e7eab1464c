#pragma once
// What the two informers feed: pods and task results go through the OutputsJoin (join.h) under
// one lock, and the steps it finds ready go to the PodRecorder. A ticker ends the join's waits
// and retentions even when no event arrives.
#include <chrono>
#include <mutex>
#include <thread>

#include "core/staleness.h"
#include "watcher/informer.h"
#include "watcher/join.h"
#include "watcher/pod_recorder.h"
#include "watcher/watcher_metrics.h"

namespace kcache::watcher {

class StepJoiner {
 public:
  StepJoiner(PodRecorder& recorder, JoinConfig config, RecordingRules rules, JoinMetrics& metrics,
             std::chrono::milliseconds tickInterval = std::chrono::seconds(1));
  ~StepJoiner();
  StepJoiner(const StepJoiner&) = delete;
  StepJoiner& operator=(const StepJoiner&) = delete;

  void start();
  void stop();

  InformerEventHandler& pods() { return pods_; }
  InformerEventHandler& taskResults() { return taskResults_; }

  size_t waitingPods() const;
  size_t deletedTaskResults() const;

 private:
  class PodHandler final : public InformerEventHandler {
   public:
    explicit PodHandler(StepJoiner& joiner) : joiner_(joiner) {}
    void onObject(const nlohmann::json& pod) override;
    void onDeleted(const nlohmann::json& pod) override;
    void onListed(const std::set<std::string>& trackingIds) override;

   private:
    StepJoiner& joiner_;
  };
  class TaskResultHandler final : public InformerEventHandler {
   public:
    explicit TaskResultHandler(StepJoiner& joiner) : joiner_(joiner) {}
    void onObject(const nlohmann::json& taskResult) override;
    void onDeleted(const nlohmann::json& taskResult) override;
    void onListed(const std::set<std::string>& trackingIds) override;

   private:
    StepJoiner& joiner_;
  };

  void hand(std::vector<RecordingPlan> plans);

  PodRecorder& recorder_;
  std::chrono::milliseconds tickInterval_;
  mutable std::mutex mutex_;
  OutputsJoin join_;
  PodHandler pods_{*this};
  TaskResultHandler taskResults_{*this};
  std::jthread ticker_;
};

}  // namespace kcache::watcher
