#pragma once
// The Kubernetes API calls kcache makes (the watcher's pods and Leases, the webhook's Argo task
// results and ConfigMaps), behind an interface so that neither ever sees HTTP: the real client is
// in kube_client.cpp, and tests bend calls by wrapping it.
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kcache::kube {

// A failed API call. `status` is the HTTP status, or 0 when no response arrived (connection
// refused, TLS failure, timeout, stream cut).
class KubeApiError : public std::runtime_error {
 public:
  KubeApiError(int status, std::string reason, const std::string& message)
      : std::runtime_error(message), status_(status), reason_(std::move(reason)) {}
  int status() const noexcept { return status_; }
  // The Status object's reason when the server sent one ("Expired", "Conflict", "AlreadyExists").
  const std::string& reason() const noexcept { return reason_; }

 private:
  int status_;
  std::string reason_;
};

// A namespaced resource: where its REST collection lives.
struct ResourceType {
  std::string_view apiPrefix;  // "/api/v1" for the core group, else "/apis/<group>/<version>"
  std::string_view plural;     // "pods", "workflowtaskresults", ...
  std::string_view kind;       // for messages: "pod", "task result", ...
};

namespace resources {
inline constexpr ResourceType kPods{"/api/v1", "pods", "pod"};
inline constexpr ResourceType kConfigMaps{"/api/v1", "configmaps", "config map"};
inline constexpr ResourceType kLeases{"/apis/coordination.k8s.io/v1", "leases", "lease"};
inline constexpr ResourceType kWorkflowTaskResults{"/apis/argoproj.io/v1alpha1",
                                                   "workflowtaskresults", "task result"};
inline constexpr ResourceType kWorkflows{"/apis/argoproj.io/v1alpha1", "workflows", "workflow"};
}  // namespace resources

struct ListOptions {
  std::string labelSelector;
  int64_t limit = 0;  // 0: no paging
  std::string continueToken;
  // Cancels the request when stop is requested (it then throws KubeApiError with status 0).
  std::stop_token stop;
};

struct ObjectListPage {
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

struct CreateOptions {
  bool dryRun = false;  // ?dryRun=All: validated and admitted, never persisted
};

class KubeApi {
 public:
  virtual ~KubeApi() = default;

  // `namespaceName` empty: all namespaces.
  virtual ObjectListPage list(const ResourceType& type, const std::string& namespaceName,
                              const ListOptions& options) = 0;

  // Streams the watch response line by line to `onLine` (one JSON event per line). Returns when
  // the server ends the stream, when `onLine` returns false, or promptly after `stop` is
  // requested. Throws KubeApiError when the request fails or the stream breaks.
  virtual void watch(const ResourceType& type, const std::string& namespaceName,
                     const WatchOptions& options,
                     const std::function<bool(std::string_view line)>& onLine,
                     std::stop_token stop) = 0;

  // nullopt on 404.
  virtual std::optional<nlohmann::json> get(const ResourceType& type,
                                            const std::string& namespaceName,
                                            const std::string& name) = 0;

  // POST; returns the stored object. Throws KubeApiError with status 409 (reason
  // "AlreadyExists") when an object of that name exists.
  virtual nlohmann::json create(const ResourceType& type, const std::string& namespaceName,
                                const nlohmann::json& object,
                                const CreateOptions& options = {}) = 0;

  // PUT; throws KubeApiError with status 409 when the resourceVersion is stale.
  virtual nlohmann::json update(const ResourceType& type, const std::string& namespaceName,
                                const std::string& name, const nlohmann::json& object) = 0;

  // PATCH with Content-Type application/merge-patch+json; returns the patched object.
  virtual nlohmann::json mergePatch(const ResourceType& type, const std::string& namespaceName,
                                    const std::string& name, const nlohmann::json& patch) = 0;

  // DELETE; false when there was nothing to delete (404).
  virtual bool remove(const ResourceType& type, const std::string& namespaceName,
                      const std::string& name) = 0;
};

}  // namespace kcache::kube
