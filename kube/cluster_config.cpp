#include "kube/cluster_config.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>

#include <yaml-cpp/yaml.h>

namespace kcache::kube {
namespace fs = std::filesystem;

namespace {

std::string readWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ClusterConfigError("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string trimmed(std::string text) {
  const auto notSpace = [](unsigned char c) { return !std::isspace(c); };
  while (!text.empty() && !notSpace(text.back())) text.pop_back();
  size_t start = 0;
  while (start < text.size() && !notSpace(text[start])) ++start;
  return text.substr(start);
}

std::string scalar(const YAML::Node& node, const char* key) {
  const YAML::Node value = node[key];
  if (!value || !value.IsScalar()) return "";
  return value.as<std::string>();
}

YAML::Node findNamed(const YAML::Node& list, const std::string& name, const char* inner,
                     const fs::path& file) {
  if (list && list.IsSequence()) {
    for (const YAML::Node& entry : list) {
      if (entry.IsMap() && scalar(entry, "name") == name && entry[inner]) return entry[inner];
    }
  }
  throw ClusterConfigError(file.string() + ": no " + inner + " named '" + name + "'");
}

fs::path resolveAgainst(const fs::path& base, const std::string& value) {
  if (value.empty()) return {};
  fs::path path(value);
  return path.is_absolute() ? path : base / path;
}

}  // namespace

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::string decodeBase64(const std::string& text) {
  auto valueOf = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t bits = 0;
  int bitCount = 0;
  for (char c : text) {
    if (c == '=' || std::isspace(static_cast<unsigned char>(c))) continue;
    const int value = valueOf(c);
    if (value < 0) throw ClusterConfigError("invalid base64 data");
    bits = (bits << 6) | static_cast<uint32_t>(value);
    bitCount += 6;
    if (bitCount >= 8) {
      bitCount -= 8;
      out.push_back(static_cast<char>((bits >> bitCount) & 0xFF));
    }
  }
  return out;
}

std::optional<ClusterConfig> loadInClusterConfig(const EnvLookup& env,
                                                 const fs::path& serviceAccountDir) {
  const auto host = env("KUBERNETES_SERVICE_HOST");
  const auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port || host->empty() || port->empty()) return std::nullopt;
  const fs::path tokenFile = serviceAccountDir / "token";
  std::error_code ec;
  if (!fs::exists(tokenFile, ec)) return std::nullopt;

  ClusterConfig config;
  // An IPv6 service address must be bracketed in a URL.
  const bool ipv6 = host->find(':') != std::string::npos;
  config.server = "https://" + (ipv6 ? "[" + *host + "]" : *host) + ":" + *port;
  config.bearerTokenFile = tokenFile;
  config.caFile = serviceAccountDir / "ca.crt";
  if (!fs::exists(config.caFile, ec)) {
    throw ClusterConfigError("in-cluster configuration: " + config.caFile.string() + " is missing");
  }
  const fs::path namespaceFile = serviceAccountDir / "namespace";
  if (fs::exists(namespaceFile, ec))
    config.defaultNamespace = trimmed(readWholeFile(namespaceFile));
  config.source = "in-cluster service account";
  return config;
}

ClusterConfig loadKubeconfig(const fs::path& path, const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw ClusterConfigError("kubeconfig " + path.string() + ": " + e.what());
  }
  if (!root.IsMap()) throw ClusterConfigError("kubeconfig " + path.string() + " is not a map");
  const fs::path base = path.parent_path();
  try {
    const std::string contextName = context.empty() ? scalar(root, "current-context") : context;
    if (contextName.empty()) {
      throw ClusterConfigError("kubeconfig " + path.string() + " has no current-context");
    }
    const YAML::Node ctx = findNamed(root["contexts"], contextName, "context", path);
    const YAML::Node cluster = findNamed(root["clusters"], scalar(ctx, "cluster"), "cluster", path);

    ClusterConfig config;
    config.server = scalar(cluster, "server");
    while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
    if (config.server.empty()) {
      throw ClusterConfigError("kubeconfig " + path.string() + ": cluster has no server");
    }
    config.caFile = resolveAgainst(base, scalar(cluster, "certificate-authority"));
    config.caData = decodeBase64(scalar(cluster, "certificate-authority-data"));
    const std::string insecure = scalar(cluster, "insecure-skip-tls-verify");
    config.insecureSkipTlsVerify = insecure == "true" || insecure == "True";

    const std::string userName = scalar(ctx, "user");
    if (!userName.empty()) {
      const YAML::Node user = findNamed(root["users"], userName, "user", path);
      config.bearerToken = scalar(user, "token");
      config.bearerTokenFile = resolveAgainst(base, scalar(user, "tokenFile"));
      config.clientCertFile = resolveAgainst(base, scalar(user, "client-certificate"));
      config.clientCertData = decodeBase64(scalar(user, "client-certificate-data"));
      config.clientKeyFile = resolveAgainst(base, scalar(user, "client-key"));
      config.clientKeyData = decodeBase64(scalar(user, "client-key-data"));
    }
    config.defaultNamespace = scalar(ctx, "namespace");
    config.source = "kubeconfig " + path.string() + " context " + contextName;
    return config;
  } catch (const YAML::Exception& e) {
    throw ClusterConfigError("kubeconfig " + path.string() + ": " + e.what());
  }
}

std::optional<ClusterConfig> discoverClusterConfig(const std::string& kubeconfigFlag,
                                                   const EnvLookup& env) {
  if (!kubeconfigFlag.empty()) return loadKubeconfig(kubeconfigFlag);
  if (auto fromEnv = env("KUBECONFIG"); fromEnv && !fromEnv->empty()) {
    // KUBECONFIG may list several files; the first one that exists is used.
    std::stringstream list(*fromEnv);
    std::string item;
    while (std::getline(list, item, ':')) {
      std::error_code ec;
      if (!item.empty() && fs::exists(item, ec)) return loadKubeconfig(item);
    }
  }
  return loadInClusterConfig(env);
}

BearerTokenSource::BearerTokenSource(const ClusterConfig& config)
    : inlineToken_(config.bearerToken), file_(config.bearerTokenFile) {}

std::string BearerTokenSource::token() {
  if (file_.empty()) return inlineToken_;
  std::lock_guard lock(mutex_);
  std::error_code ec;
  const auto mtime = fs::last_write_time(file_, ec);
  const auto size = ec ? 0 : fs::file_size(file_, ec);
  if (ec) {
    if (loaded_) return cached_;  // keep the last token through a rotation in progress
    throw ClusterConfigError("cannot read token file " + file_.string() + ": " + ec.message());
  }
  if (!loaded_ || mtime != cachedMtime_ || size != cachedSize_) {
    cached_ = trimmed(readWholeFile(file_));
    cachedMtime_ = mtime;
    cachedSize_ = size;
    loaded_ = true;
  }
  return cached_;
}

}  // namespace kcache::kube
