#pragma once
// A fake Kubernetes API server for tests: a real HTTPS/1.1 server (Boost.Beast, a generated
// certificate) speaking the wire protocol the watcher uses. Pods: list with labelSelector,
// limit/continue and a resourceVersion; watch=1 as a chunked stream of {"type","object"} lines
// from a resourceVersion, with BOOKMARKs, and 410 Gone as an ERROR event carrying a Status; merge
// patch. Leases: get, create, update with 409 Conflict on a stale resourceVersion.
// Test controls change pods (bumping one global resourceVersion), cut watch streams, expire old
// versions, fail requests, inject raw watch lines, and record the patches received.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  std::string namespaceName;
  std::string name;
  std::string contentType;
  nlohmann::json body;
  int status = 0;  // what the server answered
};

struct WatchRequest {
  std::string namespaceName;
  std::string resourceVersion;  // as requested ("" when absent)
  bool allowWatchBookmarks = false;
};

class FakeKubeServer {
 public:
  explicit FakeKubeServer(FakeKubeOptions options = {});
  ~FakeKubeServer();
  FakeKubeServer(const FakeKubeServer&) = delete;
  FakeKubeServer& operator=(const FakeKubeServer&) = delete;

  std::string url() const;  // https://127.0.0.1:<port>
  const PemPair& serverCa() const;

  // Pods. create fills in uid, resourceVersion and creationTimestamp; namespace defaults to
  // "default". update replaces the pod of that namespace/name (keeping its uid). All return the
  // stored pod.
  nlohmann::json createPod(nlohmann::json pod);
  nlohmann::json updatePod(nlohmann::json pod);
  nlohmann::json modifyPod(const std::string& namespaceName, const std::string& name,
                           const std::function<void(nlohmann::json&)>& change);
  void deletePod(const std::string& namespaceName, const std::string& name);
  std::optional<nlohmann::json> pod(const std::string& namespaceName,
                                    const std::string& name) const;
  std::vector<nlohmann::json> pods() const;
  int64_t resourceVersion() const;

  // Leases (test side): read, or overwrite as another client would.
  std::optional<nlohmann::json> lease(const std::string& namespaceName,
                                      const std::string& name) const;
  nlohmann::json putLease(nlohmann::json lease);

  // Faults.
  void dropWatchStreams();  // cut every open watch connection, without a final chunk
  void expireHistory();     // from now on, watches from any earlier version get 410 Gone
  // The next `count` requests (whose path contains `pathContains`) get `status` with a Status.
  void failNextRequests(int count, int status = 500, const std::string& pathContains = "");
  // The next `count` requests (whose path contains `pathContains`) are answered only after
  // `delay` (a slow or hanging API server).
  void delayNextRequests(int count, std::chrono::milliseconds delay,
                         const std::string& pathContains = "");
  void sendRawWatchLine(const std::string& line);  // to every open watch stream
  void sendErrorEvent(int code, const std::string& reason, const std::string& message);
  void sendBookmarks();
  void setBearerToken(const std::string& token);

  // Inspection.
  std::vector<ReceivedPatch> patches() const;
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
// carrying ARGO_TEMPLATE on its main container. `key` must be 64 hex characters.
nlohmann::json makeTaggedPod(const std::string& namespaceName, const std::string& name,
                             const std::string& key);

// What Argo does when the step finished: completed label, phase Succeeded, outputs annotation,
// and main's terminated state running from `startedAt` to `finishedAt` (RFC 3339).
void markSucceeded(nlohmann::json& pod, const std::string& outputs,
                   const std::string& startedAt = "2026-01-01T00:00:00Z",
                   const std::string& finishedAt = "2026-01-01T00:01:30Z");

}  // namespace kcache::fakekube
