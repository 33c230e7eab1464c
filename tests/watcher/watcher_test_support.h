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

#include "kube/cluster_config.h"
#include "kube/kube_api.h"
#include "store/cache_store.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"

namespace kcache::watcher::testing {

// Idempotent like the real store: one entry per (scope, namespace, key).
class InMemoryCacheRecorder : public store::CacheRecorder {
 public:
  store::RecordResult recordEntry(store::CacheScope scope, const store::NewEntry& entry) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (failuresLeft_ > 0) {
      --failuresLeft_;
      throw store::StoreError("injected store failure for key " + entry.key.substr(0, 12));
    }
    const auto id = std::make_tuple(
        scope, scope == store::CacheScope::kCluster ? "" : entry.namespaceName, entry.key);
    const auto it = ids_.find(id);
    if (it != ids_.end()) return {it->second, store::RecordOutcome::kKept};
    const int64_t newId = static_cast<int64_t>(entries_.size()) + 1;
    ids_.emplace(id, newId);
    entries_.push_back(entry);
    return {newId, store::RecordOutcome::kInserted};
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
class DelegatingKubeApi : public kube::KubeApi {
 public:
  explicit DelegatingKubeApi(kube::KubeApi& real) : real_(real) {}
  kube::ObjectListPage list(const kube::ResourceType& type, const std::string& ns,
                            const kube::ListOptions& options) override {
    return real_.list(type, ns, options);
  }
  void watch(const kube::ResourceType& type, const std::string& ns,
             const kube::WatchOptions& options, const std::function<bool(std::string_view)>& onLine,
             std::stop_token stop) override {
    real_.watch(type, ns, options, onLine, stop);
  }
  std::optional<nlohmann::json> get(const kube::ResourceType& type, const std::string& ns,
                                    const std::string& name) override {
    return real_.get(type, ns, name);
  }
  nlohmann::json create(const kube::ResourceType& type, const std::string& ns,
                        const nlohmann::json& object, const kube::CreateOptions& options) override {
    return real_.create(type, ns, object, options);
  }
  nlohmann::json update(const kube::ResourceType& type, const std::string& ns,
                        const std::string& name, const nlohmann::json& object) override {
    return real_.update(type, ns, name, object);
  }
  nlohmann::json mergePatch(const kube::ResourceType& type, const std::string& ns,
                            const std::string& name, const nlohmann::json& patch) override {
    return real_.mergePatch(type, ns, name, patch);
  }
  bool remove(const kube::ResourceType& type, const std::string& ns,
              const std::string& name) override {
    return real_.remove(type, ns, name);
  }

 protected:
  kube::KubeApi& real_;
};

using kube::testing::configFor;
using kube::testing::keyFor;
using kube::testing::numbered;
using kube::testing::waitFor;

}  // namespace kcache::watcher::testing
