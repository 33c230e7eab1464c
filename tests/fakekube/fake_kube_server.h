#pragma once
// A fake Kubernetes API server for tests: a real HTTPS/1.1 server (Boost.Beast, a generated
// certificate) speaking the wire protocol kcache's client uses, for ANY namespaced resource under
// /api/v1 or /apis/<group>/<version> (pods, configmaps, leases, Argo's workflowtaskresults and
// workflows, or any other plural; objects of an unknown plural get the apiVersion of their path).
// Per resource: GET list (labelSelector `key`, `!key`, `key=v`, `key==v`, `key!=v`, comma = AND;
// limit/continue; the list's resourceVersion), namespaced or across namespaces; GET ?watch=1 as a
// chunked stream of {"type","object"} lines from a resourceVersion, with BOOKMARKs, 410 Gone as an
// ERROR event carrying a Status, and objects leaving or entering the selector seen as DELETED or
// ADDED; GET one; POST create (uid, resourceVersion, creationTimestamp and the path's namespace
// filled in; 409 AlreadyExists; ?dryRun=All answers but stores nothing; 400 when the body's
// namespace is not the path's); PUT update (409 Conflict on a stale resourceVersion); PATCH with
// application/merge-patch+json only (415 otherwise; metadata.uid and resourceVersion in the patch
// are preconditions); DELETE (200 with the object, DELETED event, 404 when absent). Every error is
// a Kubernetes Status (kind Status, apiVersion v1, status Failure, message, reason, code). One
// global resourceVersion counter across resources, as etcd has; events are per resource type.
// Test controls change objects as another client would (emitting events), cut watch streams,
// expire old versions, fail or delay requests, inject raw watch lines, and record every request.
// The REST semantics live in object_store.h (no I/O); this file is the HTTP side.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/execution_key.h"
#include "tests/fakekube/test_certificates.h"

namespace kcache::fakekube {

struct FakeKubeOptions {
  // Requests must carry "Authorization: Bearer <token>" when set (else 401).
  std::string bearerToken;
  // When set, clients must present a certificate signed by the server's CA.
  bool requireClientCertificate = false;
  // Open watch streams that allowed bookmarks get one this often (0: only on sendBookmarks()).
  std::chrono::milliseconds bookmarkInterval{0};
  // Events kept for watches; older ones are compacted away (a watch from before them gets 410).
  size_t historyLimit = 100000;
};

struct ReceivedPatch {
  std::string plural;  // the resource patched ("pods", ...)
  std::string namespaceName;
  std::string name;
  std::string contentType;
  nlohmann::json body;
  int status = 0;  // what the server answered
};

struct WatchRequest {
  std::string plural;           // the resource watched ("pods", "workflowtaskresults", ...)
  std::string namespaceName;    // "" for a watch across namespaces
  std::string resourceVersion;  // as requested ("" when absent)
  bool allowWatchBookmarks = false;
};

// One API request as it arrived (see FakeKubeServer::requests()).
struct ReceivedRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query, as sent (percent-encoded)
  std::string query;   // the raw query string after '?', "" when none
  std::string contentType;
  nlohmann::json body;  // null when there was none or it was not JSON
  int status = 0;       // what the server answered (0 while a delayed request waits)
};

class FakeKubeServer {
 public:
  explicit FakeKubeServer(FakeKubeOptions options = {});
  ~FakeKubeServer();
  FakeKubeServer(const FakeKubeServer&) = delete;
  FakeKubeServer& operator=(const FakeKubeServer&) = delete;

  std::string url() const;  // https://127.0.0.1:<port>
  const PemPair& serverCa() const;

  // Objects of any resource, changed as another client would (each change bumps the global
  // resourceVersion and emits the watch event). `plural` is "pods", "configmaps", "leases",
  // "workflowtaskresults", "workflows", ... (any). createObject fills in uid, resourceVersion,
  // creationTimestamp, and kind/apiVersion when absent; the namespace defaults to "default"; it
  // throws std::logic_error when the object exists. updateObject replaces the object of that
  // namespace/name whatever its resourceVersion (keeping uid and creationTimestamp) and throws
  // when absent. All return the stored object. deleteObject does nothing when absent.
  nlohmann::json createObject(const std::string& plural, nlohmann::json object);  // ADDED
  nlohmann::json updateObject(const std::string& plural, nlohmann::json object);  // MODIFIED
  nlohmann::json modifyObject(const std::string& plural, const std::string& ns,
                              const std::string& name,
                              const std::function<void(nlohmann::json&)>& change);  // MODIFIED
  void deleteObject(const std::string& plural, const std::string& ns,
                    const std::string& name);  // DELETED
  std::optional<nlohmann::json> object(const std::string& plural, const std::string& ns,
                                       const std::string& name) const;
  std::vector<nlohmann::json> objects(const std::string& plural) const;  // every namespace
  int64_t resourceVersion() const;

  // Pods (the same calls on "pods").
  nlohmann::json createPod(nlohmann::json pod);
  nlohmann::json updatePod(nlohmann::json pod);
  nlohmann::json modifyPod(const std::string& namespaceName, const std::string& name,
                           const std::function<void(nlohmann::json&)>& change);
  void deletePod(const std::string& namespaceName, const std::string& name);
  std::optional<nlohmann::json> pod(const std::string& namespaceName,
                                    const std::string& name) const;
  std::vector<nlohmann::json> pods() const;

  // Leases (test side): read, or overwrite as another client would (created when absent).
  std::optional<nlohmann::json> lease(const std::string& namespaceName,
                                      const std::string& name) const;
  nlohmann::json putLease(nlohmann::json lease);

  // Faults.
  void dropWatchStreams();  // cut every open watch connection, without a final chunk
  void expireHistory();     // from now on, watches from any earlier version get 410 Gone
  // The next `count` requests whose target (path and query) contains `pathContains` and whose
  // method is `method` (both optional) get `status` with a Status of the matching reason.
  void failNextRequests(int count, int status = 500, const std::string& pathContains = "",
                        const std::string& method = "");
  // The next `count` matching requests are answered only after `delay` (a slow or hanging API
  // server). The request still takes effect after the delay even if the client gave up, as on a
  // real API server.
  void delayNextRequests(int count, std::chrono::milliseconds delay,
                         const std::string& pathContains = "", const std::string& method = "");
  void sendRawWatchLine(const std::string& line);  // to every open watch stream
  void sendErrorEvent(int code, const std::string& reason, const std::string& message);
  void sendBookmarks();
  void setBearerToken(const std::string& token);

  // Inspection.
  std::vector<ReceivedRequest> requests() const;  // every API request, in arrival order
  void clearRequests();
  std::vector<ReceivedPatch> patches() const;  // merge patches of every resource
  std::vector<WatchRequest> watchRequests() const;
  int64_t listRequests() const;
  int64_t totalRequests() const;  // every request, failed ones included
  int64_t openWatchStreams() const;
  int64_t unauthorizedRequests() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A pod as the webhook leaves it on a miss: tagged with cache_id "" and the key annotation,
// carrying ARGO_TEMPLATE on its main container. The template carries `step` (any text; tests
// pass keyFor(n)) as its container's argument, so pods of the same step share a template, and
// the annotation holds the template's real key in `binding` for the pod's namespace, as the
// webhook would annotate it (the watcher recomputes it).
nlohmann::json makeTaggedPod(const std::string& namespaceName, const std::string& name,
                             const std::string& step,
                             core::KeyBinding binding = core::KeyBinding::kNamespaceBound);

// What kcache's webhook adds next to the key (makeTaggedPod does it): the admission stamp under
// the tests' secret (tests/support/test_stamp_keys.h) for the pod's namespace, name and key, and
// `recordedStaleness`, the staleness the watcher will record (-1: no limit; a pod without the
// annotation under a MAXIMUM_CACHE_STALENESS records the maximum).
void stampAsAdmitted(nlohmann::json& pod, int64_t recordedStaleness = -1);

// The key makeTaggedPod annotates for `step` in `namespaceName`.
std::string taggedPodKey(const std::string& namespaceName, const std::string& step,
                         core::KeyBinding binding = core::KeyBinding::kNamespaceBound);

// What Argo does when the step finished: completed label, phase Succeeded, outputs annotation,
// and main's terminated state running from `startedAt` to `finishedAt` (RFC 3339).
void markSucceeded(nlohmann::json& pod, const std::string& outputs,
                   const std::string& startedAt = "2026-01-01T00:00:00Z",
                   const std::string& finishedAt = "2026-01-01T00:01:30Z");

}  // namespace kcache::fakekube
