#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "kube/cluster_config.h"

namespace kcache::kube {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("kcache-config-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name) << content;
    return path_ / name;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

EnvLookup envOf(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ClusterConfig, InClusterReadsServiceAccountFolder) {
  TempDir dir;
  dir.write("token", "abc\n");
  dir.write("ca.crt", "PEM");
  dir.write("namespace", "kubeflow\n");
  const auto config = loadInClusterConfig(
      envOf({{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}),
      dir.path());
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->server, "https://10.0.0.1:443");
  EXPECT_EQ(config->bearerTokenFile, dir.path() / "token");
  EXPECT_EQ(config->caFile, dir.path() / "ca.crt");
  EXPECT_EQ(config->defaultNamespace, "kubeflow");
  EXPECT_EQ(BearerTokenSource(*config).token(), "abc");

  const auto ipv6 = loadInClusterConfig(
      envOf({{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "443"}}),
      dir.path());
  EXPECT_EQ(ipv6->server, "https://[fd00::1]:443");
}

TEST(ClusterConfig, NoInClusterConfigOutsideACluster) {
  TempDir dir;
  EXPECT_FALSE(loadInClusterConfig(envOf({}), dir.path()).has_value());
  // Environment set but no token mounted.
  EXPECT_FALSE(
      loadInClusterConfig(
          envOf({{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}}), dir.path())
          .has_value());
  dir.write("token", "abc");
  EXPECT_THROW(
      loadInClusterConfig(
          envOf({{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}}), dir.path()),
      ClusterConfigError);
}

TEST(ClusterConfig, KubeconfigWithTokenFilesAndCurrentContext) {
  TempDir dir;
  const auto path = dir.write("config", R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
- name: devcluster
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: certs/ca.pem
contexts:
- name: dev
  context:
    cluster: devcluster
    user: alice
    namespace: team-a
- name: other
  context:
    cluster: prod
    user: bob
users:
- name: alice
  user:
    token: secret-token
    client-certificate: /abs/client.pem
    client-key: keys/client-key.pem
- name: bob
  user:
    tokenFile: bob-token
    insecure: whatever
)");
  const ClusterConfig dev = loadKubeconfig(path);
  EXPECT_EQ(dev.server, "https://127.0.0.1:6443");
  EXPECT_EQ(dev.caFile, dir.path() / "certs/ca.pem");
  EXPECT_EQ(dev.bearerToken, "secret-token");
  EXPECT_EQ(dev.clientCertFile, fs::path("/abs/client.pem"));
  EXPECT_EQ(dev.clientKeyFile, dir.path() / "keys/client-key.pem");
  EXPECT_EQ(dev.defaultNamespace, "team-a");
  EXPECT_FALSE(dev.insecureSkipTlsVerify);
  // The token never appears in where-it-came-from text used by logs.
  EXPECT_EQ(dev.source.find("secret-token"), std::string::npos);

  const ClusterConfig other = loadKubeconfig(path, "other");
  EXPECT_EQ(other.server, "https://prod.example:6443");
  EXPECT_EQ(other.bearerTokenFile, dir.path() / "bob-token");
  EXPECT_THROW(loadKubeconfig(path, "missing"), ClusterConfigError);
}

TEST(ClusterConfig, KubeconfigInlineDataIsBase64Decoded) {
  TempDir dir;
  // "-----BEGIN X-----" and "key" in base64.
  const auto path = dir.write("config", R"(current-context: c
clusters:
- name: k
  cluster:
    server: https://k:443
    certificate-authority-data: LS0tLS1CRUdJTiBYLS0tLS0=
    insecure-skip-tls-verify: true
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
)");
  const ClusterConfig config = loadKubeconfig(path);
  EXPECT_EQ(config.caData, "-----BEGIN X-----");
  EXPECT_EQ(config.clientCertData, "cert");
  EXPECT_EQ(config.clientKeyData, "key");
  EXPECT_TRUE(config.insecureSkipTlsVerify);
}

TEST(ClusterConfig, BrokenKubeconfigsAreErrorsWithTheFileName) {
  TempDir dir;
  const auto noContext = dir.write("a", "clusters: []\n");
  const auto notYaml = dir.write("b", "{{{{");
  const auto noServer = dir.write("c", R"(current-context: c
clusters: [{name: k, cluster: {}}]
contexts: [{name: c, context: {cluster: k}}]
)");
  for (const auto& path : {noContext, notYaml, noServer, dir.path() / "missing"}) {
    try {
      loadKubeconfig(path);
      ADD_FAILURE() << path;
    } catch (const ClusterConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
}

TEST(ClusterConfig, DiscoveryPrefersFlagThenKubeconfigEnvThenInCluster) {
  TempDir dir;
  const auto path = dir.write("config", R"(current-context: c
clusters: [{name: k, cluster: {server: "https://from-file:1"}}]
contexts: [{name: c, context: {cluster: k}}]
)");
  EXPECT_EQ(discoverClusterConfig(path.string(), envOf({}))->server, "https://from-file:1");
  EXPECT_EQ(
      discoverClusterConfig("", envOf({{"KUBECONFIG", "/nonexistent:" + path.string()}}))->server,
      "https://from-file:1");
}

TEST(ClusterConfig, Base64) {
  EXPECT_EQ(decodeBase64("aGVsbG8gd29ybGQ="), "hello world");
  EXPECT_EQ(decodeBase64("aGVs\nbG8="), "hello");
  EXPECT_THROW(decodeBase64("a*b"), ClusterConfigError);
}

}  // namespace
}  // namespace kcache::kube
