#pragma once
// Records planned steps (join.h decides what and when) in the store and labels their pods with the
// entry id. Store writes and patches run on a worker thread with per-pod retries and backoff, so
// a slow store or API server never blocks the informers; pods already in hand are not recorded
// twice.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "core/name_list.h"
#include "core/staleness.h"
#include "kube/kube_api.h"
#include "store/cache_store.h"
#include "watcher/backoff.h"
#include "watcher/recording_plan.h"
#include "watcher/watcher_metrics.h"

namespace kcache::watcher {

struct RecorderConfig {
  store::CacheScope scope = store::CacheScope::kNamespace;
  core::StalenessPolicy staleness;
  // tenancy (issue 13): cluster scope's writers (RecordingRules::clusterScopeWriters).
  std::optional<core::NameList> clusterScopeWriters;
  // --- Admission stamps (issue 13) ---
  // What the webhook stamps pods with; required by WatcherService (RecordingRules::
  // admissionStamps): a pod is recorded only with a stamp that verifies.
  std::shared_ptr<const core::StampKeyRing> admissionStamps;
  BackoffConfig retryBackoff{std::chrono::milliseconds(200), std::chrono::milliseconds(30000)};
  // After this many failed attempts a pod is dropped from the queue (and logged); its next event
  // or the next relist brings it back.
  int maxAttempts = 30;
  // --read-offloaded-templates (issue 13): also passed to the join's RecordingRules, which refuse
  // offloaded pods when off; the recorder refuses them too rather than read a ConfigMap.
  bool readOffloadedTemplates = false;
};

class PodRecorder {
 public:
  using Clock = std::function<int64_t()>;  // Unix seconds
  PodRecorder(store::CacheRecorder& store, kube::KubeApi& api, RecorderConfig config,
              WatcherMetrics& metrics, Clock clock = {});
  ~PodRecorder();
  PodRecorder(const PodRecorder&) = delete;
  PodRecorder& operator=(const PodRecorder&) = delete;

  void start();
  // Stops the worker; queued pods are dropped (they still carry an empty cache_id, so the next
  // leader's list finds them again).
  void stop();

  // Queues `plan` unless its pod is queued or labelled already. The recording time is the
  // recorder's clock now.
  void enqueue(RecordingPlan plan);
  // The pod was seen with a cache_id label (by us, or a cache hit): no need to remember it.
  void onPodLabelled(const PodIdentity& pod);
  void onPodDeleted(const PodIdentity& pod);
  // After a complete list of pods: the tracking ids of every pod it held.
  void onListed(const std::set<std::string>& trackingIds);

  size_t queued() const;
  // Pods remembered as queued or labelled-but-not-yet-seen-labelled (bounded by the live pods).
  size_t tracked() const;

 private:
  enum class State { kQueued, kLabelled };
  struct Work {
    RecordingPlan plan;
    std::optional<int64_t> entryId;
    int attempts = 0;
    Backoff backoff;
    std::chrono::steady_clock::time_point due;
    std::chrono::steady_clock::time_point queuedAt;
    bool inFlight = false;
  };

  void runWorker(std::stop_token stop);
  // ARGO_TEMPLATE from the pod's ConfigMap when that ConfigMap is owned by the pod's Workflow;
  // kTemplateNotOwned when it is not (or has no such key), kNoTemplate when it is absent; throws
  // on API errors (retried).
  core::Expected<std::string, SkipReason> readOffloadedTemplate(const RecordingPlan& plan);
  void process(const std::string& id, Work work);
  void retryLater(const std::string& id, Work work, const std::string& why);
  void forget(const std::string& id);

  store::CacheRecorder& store_;
  kube::KubeApi& api_;
  RecorderConfig config_;
  WatcherMetrics& metrics_;
  Clock clock_;

  mutable std::mutex mutex_;
  std::condition_variable_any wakeUp_;
  std::map<std::string, State> known_;  // by pod uid: queued, or labelled but not yet seen so
  std::map<std::string, Work> queue_;
  std::jthread worker_;
};

}  // namespace kcache::watcher
