#pragma once
// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules: a replica takes the
// lease when it is free or its holder has not renewed it within the lease duration (as observed
// locally, so clocks need not agree); the leader renews every retry period and steps down when
// it could not renew within the renew deadline or sees another holder.
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include <nlohmann/json.hpp>

#include "kube/kube_api.h"
#include "watcher/backoff.h"
#include "watcher/watcher_metrics.h"

namespace kcache::watcher {

// The time an election runs on: a monotonic clock and a sleep that a stop request cuts short
// (returning false). Tests replace both to judge lease expiry without waiting for real time.
struct ElectionClock {
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
  std::function<bool(std::chrono::milliseconds, std::stop_token)> sleep = sleepFor;
};

struct LeaderElectionConfig {
  std::string leaseNamespace;
  std::string leaseName = "kcache-watcher";
  std::string identity;
  std::chrono::milliseconds leaseDuration{15000};
  std::chrono::milliseconds renewDeadline{10000};
  std::chrono::milliseconds retryPeriod{2000};
  // Give the lease up on a clean stop, so another replica need not wait for it to expire.
  bool releaseOnStop = true;
  ElectionClock clock;
};

// client-go's rules: every duration positive, lease duration > renew deadline > 1.2 x retry
// period (the leader must get more than one jittered retry in before its deadline, and a
// follower must not take a lease its leader could still renew). Throws std::invalid_argument
// naming the values.
void validate(const LeaderElectionConfig& config);

// POD_NAMESPACE, else the service account's namespace file, else "default"; POD_NAME, else the
// host name.
std::string defaultLeaseNamespace();
std::string defaultIdentity();

class LeaderElector {
 public:
  using LeadFunction = std::function<void(std::stop_token)>;
  // Throws std::invalid_argument when the timings break validate()'s rules.
  LeaderElector(kube::KubeApi& api, LeaderElectionConfig config, WatcherMetrics& metrics);

  // Campaigns until `stop` is requested. While this replica leads, `lead` runs on its own thread
  // with a token that is stopped the moment leadership is lost (or `stop` is requested); `lead`
  // must then return promptly. Returns after `lead` has returned.
  void run(std::stop_token stop, const LeadFunction& lead);

  bool isLeader() const { return leading_.load(); }
  const LeaderElectionConfig& config() const { return config_; }

 private:
  enum class Attempt { kAcquired, kHeldByOther, kFailed };
  Attempt tryAcquireOrRenew();
  void release();
  nlohmann::json leaseSpec(const nlohmann::json* previous) const;

  kube::KubeApi& api_;
  LeaderElectionConfig config_;
  WatcherMetrics& metrics_;
  std::atomic<bool> leading_{false};

  // What this replica last saw of the lease, and when (steady clock): expiry is judged from the
  // local observation time, never from the holder's clock.
  std::string observedHolder_;
  std::string observedRenewTime_;
  std::string observedVersion_;
  int64_t observedDurationSeconds_ = 0;
  std::chrono::steady_clock::time_point observedAt_{};
  std::optional<nlohmann::json> lastLease_;
};

// Formats a system time as a Kubernetes MicroTime ("2026-01-02T03:04:05.123456Z").
std::string microTime(std::chrono::system_clock::time_point time);

}  // namespace kcache::watcher
