#pragma once
// The watcher as cache-server runs it: leader election, and while leading, the pod and task
// result informers feeding the join and the recorder, plus periodic garbage collection.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/metrics.h"
#include "kube/kube_api.h"
#include "store/cache_store.h"
#include "watcher/informer.h"
#include "watcher/join.h"
#include "watcher/leader_elector.h"
#include "watcher/pod_recorder.h"
#include "watcher/watcher_metrics.h"

namespace kcache::watcher {

struct WatcherConfig {
  InformerConfig informer;  // the pods; informer.namespaceName is --namespace_to_watch
  // Also list and watch Argo's workflowtaskresults (same namespace, paging, timeouts and
  // backoff as the pods) and join them to the pods. Off: the annotation path only.
  bool watchTaskResults = true;
  JoinConfig join;             // how long to wait for task results, how many to keep
  RecorderConfig recorder;     // scope and staleness policy
  bool leaderElection = true;  // false: this replica always leads (single replica, tests)
  LeaderElectionConfig election;
  std::chrono::milliseconds gcInterval{std::chrono::hours(1)};  // 0 disables GC
};

class WatcherService {
 public:
  WatcherService(std::shared_ptr<kube::KubeApi> api, WatcherConfig config,
                 store::CacheRecorder& store, std::function<void()> garbageCollect,
                 core::MetricsRegistry& metrics);
  ~WatcherService();
  WatcherService(const WatcherService&) = delete;
  WatcherService& operator=(const WatcherService&) = delete;

  void start();
  // Stops watching and, when leading, releases the lease (unless configured not to).
  void stop();

  bool isLeader() const;
  // Lists completed by the current leadership term's pod informer (0 when not leading).
  int64_t completedLists() const;
  // The same for the task result informer.
  int64_t completedTaskResultLists() const;

 private:
  void lead(std::stop_token stop);

  std::shared_ptr<kube::KubeApi> api_;
  WatcherConfig config_;
  store::CacheRecorder& store_;
  std::function<void()> garbageCollect_;
  WatcherMetrics metrics_;
  std::unique_ptr<LeaderElector> elector_;
  std::atomic<bool> leadingWithoutElection_{false};

  mutable std::mutex informerMutex_;
  Informer* informer_ = nullptr;            // the current term's, owned by lead()
  Informer* taskResultInformer_ = nullptr;  // likewise
  std::jthread thread_;
};

}  // namespace kcache::watcher
