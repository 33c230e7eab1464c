#pragma once
// A client-go style informer for the pods the webhook tagged: list, then watch from the list's
// resourceVersion with bookmarks; resume after a dropped stream; relist on 410 Gone or an ERROR
// event; exponential backoff with jitter between failures. Every pod state it learns about goes
// to the handler, so no completion is missed as long as the informer runs.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>

#include <nlohmann/json.hpp>

#include "kube/kube_api.h"
#include "watcher/backoff.h"
#include "watcher/watcher_metrics.h"

namespace kcache::watcher {

class PodEventHandler {
 public:
  virtual ~PodEventHandler() = default;
  virtual void onPod(const nlohmann::json& pod) = 0;
  virtual void onPodDeleted(const nlohmann::json& pod) = 0;
  // After a complete list: the tracking ids (trackingId() in recording_plan.h) of every pod it
  // held, so that state kept for pods deleted while the watch was down can be dropped.
  virtual void onListed(const std::set<std::string>& /*trackingIds*/) {}
};

struct InformerConfig {
  std::string namespaceName;  // "" watches all namespaces
  std::string labelSelector;  // defaults to the cache_id label existing
  int64_t pageSize = 500;
  int watchTimeoutSeconds = 300;
  BackoffConfig backoff;
};

class PodInformer {
 public:
  PodInformer(kube::KubeApi& api, InformerConfig config, PodEventHandler& handler,
              WatcherMetrics& metrics);

  // Runs until `stop` is requested; returns promptly then (an open watch is cancelled).
  void run(std::stop_token stop);

  // The version the next watch resumes from (for tests and logs).
  std::string resumeVersion() const;
  // Incremented after each complete list, so callers can tell that a list has finished.
  int64_t completedLists() const { return completedLists_.load(); }

 private:
  enum class WatchEnd { kClosed, kExpired, kStopped };
  void listAll(std::stop_token stop);
  WatchEnd watchOnce(std::stop_token stop, bool& receivedEvents);
  void setResumeVersion(const std::string& version);

  kube::KubeApi& api_;
  InformerConfig config_;
  PodEventHandler& handler_;
  WatcherMetrics& metrics_;
  mutable std::mutex mutex_;
  std::string resumeVersion_;
  std::atomic<int64_t> completedLists_{0};
};

}  // namespace kcache::watcher
