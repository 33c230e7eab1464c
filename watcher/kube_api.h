#pragma once
// The few Kubernetes API calls the watcher makes, behind an interface so that the informer, the
// recorder and the leader elector never see HTTP (the real client is in kube_client.cpp).
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kcache::watcher {

// A failed API call. `status` is the HTTP status, or 0 when no response arrived (connection
// refused, TLS failure, timeout, stream cut).
class KubeApiError : public std::runtime_error {
 public:
  KubeApiError(int status, std::string reason, const std::string& message)
      : std::runtime_error(message), status_(status), reason_(std::move(reason)) {}
  int status() const noexcept { return status_; }
  // The Status object's reason when the server sent one ("Expired", "Conflict", ...).
  const std::string& reason() const noexcept { return reason_; }

 private:
  int status_;
  std::string reason_;
};

struct ListOptions {
  std::string labelSelector;
  int64_t limit = 0;  // 0: no paging
  std::string continueToken;
  // Cancels the request when stop is requested (it then throws KubeApiError with status 0).
  std::stop_token stop;
};

struct PodListPage {
  std::vector<nlohmann::json> items;
  std::string resourceVersion;
  std::string continueToken;  // empty on the last page
};

struct WatchOptions {
  std::string labelSelector;
  std::string resourceVersion;
  bool allowWatchBookmarks = true;
  int timeoutSeconds = 300;  // the server ends the stream after this long
};

class KubeApi {
 public:
  virtual ~KubeApi() = default;

  // `namespaceName` empty: all namespaces.
  virtual PodListPage listPods(const std::string& namespaceName, const ListOptions& options) = 0;

  // Streams the watch response line by line to `onLine` (one JSON event per line). Returns when
  // the server ends the stream, when `onLine` returns false, or promptly after `stop` is
  // requested. Throws KubeApiError when the request fails or the stream breaks.
  virtual void watchPods(const std::string& namespaceName, const WatchOptions& options,
                         const std::function<bool(std::string_view line)>& onLine,
                         std::stop_token stop) = 0;

  // PATCH with Content-Type application/merge-patch+json; returns the patched pod.
  virtual nlohmann::json mergePatchPod(const std::string& namespaceName, const std::string& name,
                                       const nlohmann::json& patch) = 0;

  // coordination.k8s.io/v1 Leases. getLease returns nullopt on 404; create and update throw
  // KubeApiError with status 409 when someone else got there first.
  virtual std::optional<nlohmann::json> getLease(const std::string& namespaceName,
                                                 const std::string& name) = 0;
  virtual nlohmann::json createLease(const std::string& namespaceName,
                                     const nlohmann::json& lease) = 0;
  virtual nlohmann::json updateLease(const std::string& namespaceName, const std::string& name,
                                     const nlohmann::json& lease) = 0;
};

}  // namespace kcache::watcher
