#pragma once
// Shared pieces of the watcher tests: an in-memory CacheRecorder, bounded waits, and a client
// configuration for the fake API server.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "store/cache_store.h"
#include "tests/fakekube/fake_kube_server.h"
#include "watcher/cluster_config.h"
#include "watcher/kube_api.h"

namespace kcache::watcher::testing {

// Idempotent like the real store: one entry per (scope, namespace, key).
class InMemoryCacheRecorder : public store::CacheRecorder {
 public:
  int64_t record(store::CacheScope scope, const store::NewEntry& entry) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (failuresLeft_ > 0) {
      --failuresLeft_;
      throw store::StoreError("injected store failure for key " + entry.key.substr(0, 12));
    }
    const auto id = std::make_tuple(
        scope, scope == store::CacheScope::kCluster ? "" : entry.namespaceName, entry.key);
    const auto it = ids_.find(id);
    if (it != ids_.end()) return it->second;
    const int64_t newId = static_cast<int64_t>(entries_.size()) + 1;
    ids_.emplace(id, newId);
    entries_.push_back(entry);
    return newId;
  }

  void failNext(int count) {
    std::lock_guard lock(mutex_);
    failuresLeft_ = count;
  }
  int64_t calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::vector<store::NewEntry> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::tuple<store::CacheScope, std::string, std::string>, int64_t> ids_;
  std::vector<store::NewEntry> entries_;
  int64_t calls_ = 0;
  int failuresLeft_ = 0;
};

// Forwards every call to a real client; tests override the calls they want to bend.
class DelegatingKubeApi : public KubeApi {
 public:
  explicit DelegatingKubeApi(KubeApi& real) : real_(real) {}
  PodListPage listPods(const std::string& ns, const ListOptions& options) override {
    return real_.listPods(ns, options);
  }
  void watchPods(const std::string& ns, const WatchOptions& options,
                 const std::function<bool(std::string_view)>& onLine,
                 std::stop_token stop) override {
    real_.watchPods(ns, options, onLine, stop);
  }
  nlohmann::json mergePatchPod(const std::string& ns, const std::string& name,
                               const nlohmann::json& patch) override {
    return real_.mergePatchPod(ns, name, patch);
  }
  std::optional<nlohmann::json> getLease(const std::string& ns, const std::string& name) override {
    return real_.getLease(ns, name);
  }
  nlohmann::json createLease(const std::string& ns, const nlohmann::json& lease) override {
    return real_.createLease(ns, lease);
  }
  nlohmann::json updateLease(const std::string& ns, const std::string& name,
                             const nlohmann::json& lease) override {
    return real_.updateLease(ns, name, lease);
  }

 protected:
  KubeApi& real_;
};

// Polls `condition` until it holds or `limit` passes; returns whether it held.
inline bool waitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

inline ClusterConfig configFor(const fakekube::FakeKubeServer& server) {
  ClusterConfig config;
  config.server = server.url();
  config.caData = server.serverCa().certificate;
  config.requestTimeout = std::chrono::seconds(5);
  config.source = "fake";
  return config;
}

// A valid-looking execution key (64 lower-case hex characters) for pod number `n`.
inline std::string keyFor(int n) {
  char text[65];
  std::snprintf(text, sizeof text, "%064x", n);
  return text;
}

// "<prefix><n>", built by appending (GCC 12 warns falsely about "literal" + std::string).
inline std::string numbered(const std::string& prefix, int n) {
  std::string name = prefix;
  name += std::to_string(n);
  return name;
}

}  // namespace kcache::watcher::testing
