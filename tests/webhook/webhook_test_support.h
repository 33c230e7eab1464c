#pragma once
// Helpers for the webhook tests: fixtures, an in-memory CacheLookup (for pure-logic tests and
// failure injection), throwaway certificates, and a real HTTPS/HTTP client (Boost.Beast).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/cache_store.h"

namespace kcache::webhook::testing {

std::string readFixture(const std::string& name);  // tests/data/admission/<name>

// The key the webhook uses for `argoTemplate` in `scope`, for a pod of `namespaceName`: bound to
// the namespace in namespace scope, template-only in cluster scope.
std::string keyInScope(std::string_view argoTemplate, store::CacheScope scope,
                       const std::string& namespaceName);
// The names of every tests/data/admission/*.json fixture, sorted.
std::vector<std::string> fixtureNames();
nlohmann::json fixtureJson(const std::string& name);

// Entries in memory with the store's semantics: newest fresh entry of the scope.
class MemoryLookup : public store::CacheLookup {
 public:
  int64_t add(store::CacheEntry entry);  // assigns and returns the id
  std::optional<store::CacheEntry> lookup(store::CacheScope scope, std::string_view namespaceName,
                                          std::string_view key, int64_t podStalenessSeconds,
                                          int64_t nowInSec) override;
  // Rows without a namespace under the template-only key, as the store's audit-mode query.
  std::optional<store::CacheEntry> lookupLegacy(std::string_view legacyKey,
                                                int64_t podStalenessSeconds,
                                                int64_t nowInSec) override;
  void noteHit(int64_t entryId, int64_t nowInSec) override;
  std::vector<int64_t> notedHits() const;
  int lookups() const { return lookups_.load(); }
  int legacyLookups() const { return legacyLookups_.load(); }
  struct LastQuery {
    store::CacheScope scope;
    std::string namespaceName, key;
    int64_t podStaleness = 0;
  };
  std::optional<LastQuery> lastQuery() const;

 private:
  mutable std::mutex mutex_;
  std::vector<store::CacheEntry> entries_;
  std::vector<int64_t> hits_;
  std::optional<LastQuery> last_;
  std::atomic<int> lookups_{0};
  std::atomic<int> legacyLookups_{0};
};

// Wraps a lookup and, on command, fails (throws StoreError) or stalls before answering.
class FaultyLookup : public store::CacheLookup {
 public:
  // Faults apply to both kinds of lookup.
  explicit FaultyLookup(store::CacheLookup& inner) : inner_(inner) {}
  void failWith(std::string message);
  void stallFor(std::chrono::milliseconds delay) { stall_.store(delay.count()); }
  void heal();
  int calls() const { return calls_.load(); }  // lookups started, including the stalled ones
  std::optional<store::CacheEntry> lookup(store::CacheScope scope, std::string_view namespaceName,
                                          std::string_view key, int64_t podStalenessSeconds,
                                          int64_t nowInSec) override;
  std::optional<store::CacheEntry> lookupLegacy(std::string_view legacyKey,
                                                int64_t podStalenessSeconds,
                                                int64_t nowInSec) override;
  void noteHit(int64_t entryId, int64_t nowInSec) override { inner_.noteHit(entryId, nowInSec); }

 private:
  void injectFaults();  // counts the call, stalls and throws as commanded

  store::CacheLookup& inner_;
  std::mutex mutex_;
  std::optional<std::string> failure_;
  std::atomic<int64_t> stall_{0};
  std::atomic<int> calls_{0};
};

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

enum class KeyType { kEcdsa, kRsa };

// A self-signed certificate for localhost/127.0.0.1 made with the openssl command line.
// Files are written next to their final names and renamed, so a watcher never reads half a file.
void writeSelfSignedCertificate(const std::filesystem::path& certFile,
                                const std::filesystem::path& keyFile, const std::string& commonName,
                                KeyType keyType = KeyType::kEcdsa);

// A CA (self-signed, basicConstraints CA:TRUE) and a certificate it signs, for client
// authentication; `extendedKeyUsage` is written into the signed certificate (clientAuth for a
// client certificate).
void writeCertificateAuthority(const std::filesystem::path& certFile,
                               const std::filesystem::path& keyFile, const std::string& commonName);
void writeSignedCertificate(const std::filesystem::path& certFile,
                            const std::filesystem::path& keyFile, const std::string& commonName,
                            const std::filesystem::path& caCertFile,
                            const std::filesystem::path& caKeyFile,
                            const std::string& extendedKeyUsage = "clientAuth");

struct ClientCertificate {
  std::filesystem::path certFile;
  std::filesystem::path keyFile;
};

// Runs `body` with stderr redirected into a file and returns what was written.
std::string captureStderr(const std::function<void()>& body);
std::vector<std::string> splitLines(const std::string& text);

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// A keep-alive HTTPS client trusting the given certificate files.
class HttpsClient {
 public:
  HttpsClient(uint16_t port, const std::vector<std::filesystem::path>& trustedCertificates,
              const std::optional<ClientCertificate>& clientCertificate = std::nullopt);
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body, const std::string& contentType);
  HttpResponse postReview(const std::string& body) {
    return request("POST", "/mutate", body, "application/json");
  }
  // Raw bytes over the TLS connection, and an HTTP response read from it (for malformed input).
  void writeRaw(const std::string& bytes);
  HttpResponse readResponse();
  std::string peerCommonName() const;
  // True once the server closed this connection (read returns end of stream).
  bool closedByPeer();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A one-shot plain HTTP GET.
HttpResponse httpGet(uint16_t port, const std::string& target);

std::string base64Decode(const std::string& text);

// The admission.k8s.io/v1 AdmissionReview kube-apiserver sends for a CREATE of `pod` (its name
// and namespace from its metadata) by `userName`.
nlohmann::json podCreateReview(const nlohmann::json& pod,
                               const std::string& userName = "system:serviceaccount:argo:argo",
                               bool dryRun = false);

// The result of applying an AdmissionReview answer to the pod it was about.
struct AppliedAnswer {
  nlohmann::json review;  // the decoded answer
  bool allowed = false;
  bool hasPatch = false;
  nlohmann::json patch;       // the JSON Patch array (null when none)
  nlohmann::json patchedPod;  // the pod after nlohmann's json::patch()
};
AppliedAnswer applyAnswer(const nlohmann::json& pod, const std::string& answerBody);

}  // namespace kcache::webhook::testing
