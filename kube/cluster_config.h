#pragma once
// Where the Kubernetes API is and how to authenticate to it: in-cluster (service-account token,
// CA, KUBERNETES_SERVICE_HOST/PORT) or a kubeconfig file.
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

namespace kcache::kube {

class ClusterConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ClusterConfig {
  std::string server;  // https://host:port, no trailing slash

  // Authentication: a bearer token given inline, or read from a file (re-read when it rotates).
  std::string bearerToken;
  std::filesystem::path bearerTokenFile;

  // TLS. PEM data wins over the file when both are set.
  std::filesystem::path caFile;
  std::string caData;
  std::filesystem::path clientCertFile;
  std::string clientCertData;
  std::filesystem::path clientKeyFile;
  std::string clientKeyData;
  bool insecureSkipTlsVerify = false;

  // Deadline of one ordinary request (list page, patch, lease call); watches have their own.
  // Kept well below the leader election's renew deadline (10 s), so that a hanging API server
  // cannot keep a leader believing it leads after its lease could have expired.
  std::chrono::milliseconds requestTimeout{5000};

  // The namespace of the service account (in-cluster) or of the kubeconfig context, if known.
  std::string defaultNamespace;
  // Where the configuration came from, for logs.
  std::string source;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup processEnvironment();

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// In-cluster configuration, or nullopt when KUBERNETES_SERVICE_HOST/PORT are not set or the token
// file does not exist. Throws ClusterConfigError when the environment is set but unusable.
std::optional<ClusterConfig> loadInClusterConfig(
    const EnvLookup& env = processEnvironment(),
    const std::filesystem::path& serviceAccountDir = kServiceAccountDir);

// Parses a kubeconfig file (current-context, or `context` when given). Relative file paths are
// resolved against the kubeconfig's folder; *-data fields are base64. Throws ClusterConfigError.
ClusterConfig loadKubeconfig(const std::filesystem::path& path, const std::string& context = "");

// What cache-server uses: --kubeconfig when given, else $KUBECONFIG when set, else in-cluster.
// nullopt when none is found (the watcher then stays off).
std::optional<ClusterConfig> discoverClusterConfig(const std::string& kubeconfigFlag,
                                                   const EnvLookup& env = processEnvironment());

// The bearer token of a config, re-reading the token file whenever it changes on disk
// (kubelet rotates projected service-account tokens by swapping a symlink).
class BearerTokenSource {
 public:
  explicit BearerTokenSource(const ClusterConfig& config);
  // "" when the config has no token. Throws ClusterConfigError when the file cannot be read.
  std::string token();

 private:
  std::string inlineToken_;
  std::filesystem::path file_;
  std::mutex mutex_;
  std::string cached_;
  std::filesystem::file_time_type cachedMtime_{};
  std::uintmax_t cachedSize_ = 0;
  bool loaded_ = false;
};

std::string decodeBase64(const std::string& text);

}  // namespace kcache::kube
