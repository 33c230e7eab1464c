#pragma once
// A client-go style informer for one kind of namespaced object (the pods the webhook tagged,
// Argo's task results): list, then watch from the list's resourceVersion with bookmarks; resume
// after a dropped stream; relist on 410 Gone or an ERROR event; exponential backoff with jitter
// between failures. Every object state it learns about goes to the handler, so no change is
// missed as long as the informer runs.
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

class InformerEventHandler {
 public:
  virtual ~InformerEventHandler() = default;
  // A listed object, or the object of an ADDED or MODIFIED event.
  virtual void onObject(const nlohmann::json& object) = 0;
  virtual void onDeleted(const nlohmann::json& object) = 0;
  // After a complete list: the tracking ids (trackingId() in recording_plan.h) of every object it
  // held, so that state kept for objects deleted while the watch was down can be dropped.
  virtual void onListed(const std::set<std::string>& /*trackingIds*/) {}
};

struct InformerConfig {
  kube::ResourceType resource = kube::resources::kPods;
  std::string kind = "Pod";   // watch events carrying another kind are skipped as malformed
  std::string namespaceName;  // "" watches all namespaces
  std::string labelSelector;  // defaults to the cache_id label existing
  int64_t pageSize = 500;
  int watchTimeoutSeconds = 300;
  BackoffConfig backoff;
};

class Informer {
 public:
  Informer(kube::KubeApi& api, InformerConfig config, InformerEventHandler& handler,
           InformerMetrics& metrics);

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
  InformerEventHandler& handler_;
  InformerMetrics& metrics_;
  const std::string what_;  // "pods in all namespaces", for logs
  mutable std::mutex mutex_;
  std::string resumeVersion_;
  std::atomic<int64_t> completedLists_{0};
};

}  // namespace kcache::watcher
