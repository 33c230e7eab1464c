#pragma once
// The fake API server's state without any I/O: namespaced objects of any resource, one global
// resourceVersion counter across all of them (as etcd has), the event history that watches
// replay, and list snapshots for limit/continue. Every REST verb answers as the API server does,
// with an HTTP status and the object or a Kubernetes Status. Not thread-safe: the server holds
// its lock around every call.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/fakekube/label_selector.h"

namespace kcache::fakekube {

// A Kubernetes Status object (kind Status, apiVersion v1, status Failure).
nlohmann::json statusObject(int code, const std::string& reason, const std::string& message,
                            const nlohmann::json& details = nullptr);
// The Status reason the API server uses for an HTTP status ("NotFound", "Forbidden", ...).
std::string reasonForStatus(int code);

// A resource type: the apiVersion its objects carry ("v1", "argoproj.io/v1alpha1"), its plural
// (the REST collection name) and its Kind.
struct ResourceInfo {
  std::string apiVersion;
  std::string plural;
  std::string kind;

  std::string group() const;  // "" for the core group
  // Built into Kubernetes (core, "apps", "*.k8s.io") rather than a custom resource such as
  // Argo's: custom resources refuse an update without a resourceVersion.
  bool builtIn() const;
  // "pods", "leases.coordination.k8s.io": how the API server names a resource in messages.
  std::string qualifiedName() const;
};

// What a REST call answers.
struct ApiResult {
  int status = 200;
  nlohmann::json body;
  bool ok() const { return status >= 200 && status < 300; }
};

struct StoredEvent {
  int64_t version = 0;
  std::string plural;
  std::string type;  // ADDED, MODIFIED, DELETED
  nlohmann::json object;
  nlohmann::json previous;  // the object before a MODIFIED, else null
};

class ObjectStore {
 public:
  explicit ObjectStore(size_t historyLimit) : historyLimit_(historyLimit) {}

  // The resource of that plural: a well-known one (pods, configmaps, leases, Argo's), one seen
  // before, or a new one served under `apiVersion` (its Kind taken from `kindHint`, else derived
  // from the plural).
  ResourceInfo resource(const std::string& plural, const std::string& apiVersion = "",
                        const std::string& kindHint = "");
  // The resource a request path names, or nullopt (404) when the server does not serve it there:
  // a known plural under another group or version, or an unknown plural in a group the server
  // knows (core, *.k8s.io, argoproj.io: most likely a misspelt plural). Plurals of other groups
  // are served as they come, as if their CRD were installed.
  std::optional<ResourceInfo> served(const std::string& plural, const std::string& apiVersion,
                                     const std::string& kindHint);

  // The REST verbs. `dryRun` answers as the call would but stores nothing and emits no event.
  ApiResult create(const ResourceInfo& type, const std::string& ns, nlohmann::json object,
                   bool dryRun);
  // A stale metadata.resourceVersion in `object` is a 409 Conflict; none means unconditional.
  ApiResult update(const ResourceInfo& type, const std::string& ns, const std::string& name,
                   nlohmann::json object, bool dryRun);
  ApiResult mergePatch(const ResourceInfo& type, const std::string& ns, const std::string& name,
                       const nlohmann::json& patch, bool dryRun);
  // `options` is a DeleteOptions body (its preconditions are checked) or null.
  ApiResult remove(const ResourceInfo& type, const std::string& ns, const std::string& name,
                   const nlohmann::json& options, bool dryRun);
  ApiResult get(const ResourceInfo& type, const std::string& ns, const std::string& name) const;
  // `ns` empty: every namespace. `limit` 0: no paging.
  ApiResult list(const ResourceInfo& type, const std::string& ns, const std::string& selector,
                 int64_t limit, const std::string& continueToken);

  // Watches. start() gives the ADDED events of the current state when `resourceVersion` is "" or
  // "0", else checks that the version is still in the history (a Status 410 event when not).
  struct WatchStart {
    std::vector<nlohmann::json> events;  // {"type","object"} each
    int64_t cursor = 0;
    bool expired = false;
  };
  WatchStart startWatch(const ResourceInfo& type, const std::string& ns,
                        const LabelSelector& selector, const std::string& resourceVersion) const;
  // The events of `type` after `cursor` as that watch sees them (an object leaving the selector
  // is DELETED, one entering it ADDED, as the API server's watch cache does); moves `cursor`.
  std::vector<nlohmann::json> eventsAfter(int64_t& cursor, const ResourceInfo& type,
                                          const std::string& ns,
                                          const LabelSelector& selector) const;
  bool hasEventsAfter(int64_t cursor) const {
    return !history_.empty() && history_.back().version > cursor;
  }

  int64_t version() const { return version_; }
  // From now on, watches and continue tokens from any earlier version are 410 Gone.
  void expireHistory() { compactedThrough_ = version_; }

  std::optional<nlohmann::json> object(const std::string& plural, const std::string& ns,
                                       const std::string& name) const;
  std::vector<nlohmann::json> objects(const std::string& plural) const;

 private:
  using Objects = std::map<std::string, nlohmann::json>;  // "<ns>/<name>" -> object
  struct Snapshot {
    int64_t version = 0;
    std::vector<nlohmann::json> items;
  };

  ApiResult notFound(const ResourceInfo& type, const std::string& name) const;
  ApiResult conflict(const ResourceInfo& type, const std::string& name) const;
  // The 409 when `expected` (metadata, a patch's metadata, or DeleteOptions.preconditions) names
  // a uid or resourceVersion other than the stored object's `current` metadata.
  std::optional<ApiResult> preconditionFailure(const ResourceInfo& type, const std::string& name,
                                               const nlohmann::json& current,
                                               const nlohmann::json& expected) const;
  nlohmann::json& store(Objects& objects, const std::string& key, nlohmann::json object,
                        const std::string& plural, const std::string& type,
                        nlohmann::json previous);
  void appendEvent(StoredEvent event);

  size_t historyLimit_;
  int64_t version_ = 0;
  int64_t compactedThrough_ = 0;
  int64_t uidCounter_ = 0;
  int64_t snapshotCounter_ = 0;
  std::map<std::string, ResourceInfo> resources_;  // by plural
  std::map<std::string, Objects> objects_;         // by plural
  std::deque<StoredEvent> history_;
  std::map<int64_t, std::shared_ptr<Snapshot>> snapshots_;
};

}  // namespace kcache::fakekube
