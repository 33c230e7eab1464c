#include "watcher/leader_elector.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "kube/cluster_config.h"

namespace kcache::watcher {
namespace {

int64_t durationSeconds(std::chrono::milliseconds duration) {
  // Leases hold whole seconds; round up so that a short test duration is never 0.
  return std::max<int64_t>(1, (duration.count() + 999) / 1000);
}

std::string stringAt(const nlohmann::json& object, const char* a, const char* b) {
  const auto outer = object.find(a);
  if (outer == object.end() || !outer->is_object()) return "";
  const auto inner = outer->find(b);
  return inner != outer->end() && inner->is_string() ? inner->get<std::string>() : "";
}

}  // namespace

std::string microTime(std::chrono::system_clock::time_point time) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::array<char, 96> text{};
  std::snprintf(text.data(), text.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros % 1000000));
  return text.data();
}

std::string defaultLeaseNamespace() {
  if (const char* fromEnv = std::getenv("POD_NAMESPACE"); fromEnv && *fromEnv) return fromEnv;
  std::ifstream file(std::string(kube::kServiceAccountDir) + "/namespace");
  std::string name;
  if (file && std::getline(file, name) && !name.empty()) return name;
  return "default";
}

std::string defaultIdentity() {
  if (const char* fromEnv = std::getenv("POD_NAME"); fromEnv && *fromEnv) return fromEnv;
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) == 0 && host[0] != '\0') return host.data();
  return "kcache-" + std::to_string(getpid());
}

void validate(const LeaderElectionConfig& config) {
  const auto ms = [](std::chrono::milliseconds duration) {
    return std::to_string(duration.count()) + " ms";
  };
  const std::string where = "leader election on lease " + config.leaseName + ": ";
  if (config.leaseName.empty()) throw std::invalid_argument(where + "the lease name is empty");
  if (config.retryPeriod.count() <= 0) {
    throw std::invalid_argument(where + "the retry period (" + ms(config.retryPeriod) +
                                ") must be positive");
  }
  if (config.renewDeadline * 10 <= config.retryPeriod * 12) {
    throw std::invalid_argument(where + "the renew deadline (" + ms(config.renewDeadline) +
                                ") must be longer than 1.2 x the retry period (" +
                                ms(config.retryPeriod) + ")");
  }
  if (config.leaseDuration <= config.renewDeadline) {
    throw std::invalid_argument(where + "the lease duration (" + ms(config.leaseDuration) +
                                ") must be longer than the renew deadline (" +
                                ms(config.renewDeadline) + ")");
  }
  if (!config.clock.now || !config.clock.sleep) {
    throw std::invalid_argument(where + "the clock is incomplete");
  }
}

LeaderElector::LeaderElector(kube::KubeApi& api, LeaderElectionConfig config,
                             WatcherMetrics& metrics)
    : api_(api), config_(std::move(config)), metrics_(metrics) {
  validate(config_);
  if (config_.identity.empty()) config_.identity = defaultIdentity();
  if (config_.leaseNamespace.empty()) config_.leaseNamespace = defaultLeaseNamespace();
}

nlohmann::json LeaderElector::leaseSpec(const nlohmann::json* previous) const {
  const std::string now = microTime(std::chrono::system_clock::now());
  nlohmann::json spec = {{"holderIdentity", config_.identity},
                         {"leaseDurationSeconds", durationSeconds(config_.leaseDuration)},
                         {"acquireTime", now},
                         {"renewTime", now},
                         {"leaseTransitions", 0}};
  if (previous != nullptr && previous->is_object()) {
    const int64_t transitions = previous->value("leaseTransitions", int64_t{0});
    if (previous->value("holderIdentity", "") == config_.identity) {
      spec["acquireTime"] = previous->value("acquireTime", now);
      spec["leaseTransitions"] = transitions;
    } else {
      spec["leaseTransitions"] = transitions + 1;
    }
  }
  return spec;
}

LeaderElector::Attempt LeaderElector::tryAcquireOrRenew() {
  const std::string& ns = config_.leaseNamespace;
  const std::string& name = config_.leaseName;
  try {
    std::optional<nlohmann::json> lease = api_.get(kube::resources::kLeases, ns, name);
    if (!lease) {
      nlohmann::json created = {{"apiVersion", "coordination.k8s.io/v1"},
                                {"kind", "Lease"},
                                {"metadata", {{"name", name}, {"namespace", ns}}},
                                {"spec", leaseSpec(nullptr)}};
      lastLease_ = api_.create(kube::resources::kLeases, ns, created);
      observedAt_ = config_.clock.now();
      return Attempt::kAcquired;
    }
    const nlohmann::json spec = lease->value("spec", nlohmann::json::object());
    const std::string holder = spec.value("holderIdentity", "");
    const std::string renewTime = spec.value("renewTime", "");
    const std::string version = stringAt(*lease, "metadata", "resourceVersion");
    const auto now = config_.clock.now();
    if (holder != observedHolder_ || renewTime != observedRenewTime_ ||
        observedAt_ == std::chrono::steady_clock::time_point{}) {
      observedHolder_ = holder;
      observedRenewTime_ = renewTime;
      observedDurationSeconds_ = spec.value("leaseDurationSeconds", int64_t{0});
      observedAt_ = now;
    }
    observedVersion_ = version;
    const auto observedDuration = observedDurationSeconds_ > 0
                                      ? std::chrono::milliseconds(observedDurationSeconds_ * 1000)
                                      : config_.leaseDuration;
    if (!holder.empty() && holder != config_.identity && now < observedAt_ + observedDuration) {
      return Attempt::kHeldByOther;
    }
    nlohmann::json updated = *lease;
    updated["spec"] = leaseSpec(&spec);
    lastLease_ = api_.update(kube::resources::kLeases, ns, name, updated);
    return Attempt::kAcquired;
  } catch (const kube::KubeApiError& e) {
    if (e.status() == 409) {
      spdlog::debug("leader election: lease {}/{} changed under us: {}", ns, name, e.what());
      return Attempt::kHeldByOther;
    }
    spdlog::warn("leader election: lease {}/{}: {}", ns, name, e.what());
    return Attempt::kFailed;
  } catch (const std::exception& e) {
    spdlog::warn("leader election: lease {}/{}: {}", ns, name, e.what());
    return Attempt::kFailed;
  }
}

void LeaderElector::release() {
  if (!lastLease_) return;
  try {
    nlohmann::json released = *lastLease_;
    const std::string now = microTime(std::chrono::system_clock::now());
    released["spec"]["holderIdentity"] = "";
    released["spec"]["leaseDurationSeconds"] = 1;
    released["spec"]["renewTime"] = now;
    api_.update(kube::resources::kLeases, config_.leaseNamespace, config_.leaseName, released);
    spdlog::info("leader election: {} released lease {}/{}", config_.identity,
                 config_.leaseNamespace, config_.leaseName);
  } catch (const std::exception& e) {
    spdlog::warn("leader election: releasing lease {}/{} failed: {}", config_.leaseNamespace,
                 config_.leaseName, e.what());
  }
  lastLease_.reset();
}

void LeaderElector::run(std::stop_token stop, const LeadFunction& lead) {
  while (!stop.stop_requested()) {
    // Campaign.
    if (tryAcquireOrRenew() != Attempt::kAcquired) {
      config_.clock.sleep(config_.retryPeriod, stop);
      continue;
    }
    spdlog::info("leader election: {} leads (lease {}/{})", config_.identity,
                 config_.leaseNamespace, config_.leaseName);
    leading_ = true;
    metrics_.leader.set(1);
    metrics_.leaderTransitions.inc();  // counts becoming leader; stepping down is not counted
    std::jthread leader([&lead](std::stop_token leadStop) { lead(leadStop); });
    // Stop leading the moment the outer stop is requested, not only at the next renewal.
    std::stop_callback stopLeading(stop, [&leader] { leader.request_stop(); });

    auto lastRenew = config_.clock.now();
    bool lost = false;
    while (!stop.stop_requested()) {
      if (!config_.clock.sleep(config_.retryPeriod, stop)) break;
      const Attempt attempt = tryAcquireOrRenew();
      if (attempt == Attempt::kAcquired) {
        lastRenew = config_.clock.now();
        continue;
      }
      if (attempt == Attempt::kHeldByOther) {
        spdlog::warn("leader election: {} lost lease {}/{} to {}", config_.identity,
                     config_.leaseNamespace, config_.leaseName, observedHolder_);
        lost = true;
        break;
      }
      if (config_.clock.now() - lastRenew >= config_.renewDeadline) {
        spdlog::warn("leader election: {} could not renew lease {}/{} within {} ms, stepping down",
                     config_.identity, config_.leaseNamespace, config_.leaseName,
                     config_.renewDeadline.count());
        lost = true;
        break;
      }
    }
    leader.request_stop();
    leader.join();
    leading_ = false;
    metrics_.leader.set(0);
    if (lost) {
      lastLease_.reset();
    } else if (config_.releaseOnStop) {
      release();
    }
  }
}

}  // namespace kcache::watcher
