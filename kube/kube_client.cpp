// The only file that includes cpprestsdk: its U() macro and its headers stay out of the rest of
// kcache (docs/operations.md, "Platform traps (Debian 12)").
#include "kube/kube_client.h"

#include <algorithm>
#include <exception>
#include <vector>

#include <cpprest/http_client.h>
#include <cpprest/uri.h>
#include <pplx/pplxtasks.h>
#include <boost/asio/ssl.hpp>

namespace kcache::kube {
namespace {

namespace http = web::http;
namespace client = web::http::client;

// A watch stream that stays silent this long is considered dead (the API server sends bookmarks
// about once a minute and ends a watch after its timeoutSeconds).
constexpr std::chrono::seconds kWatchIdleTimeout{360};

std::string encodeQueryValue(const std::string& value) {
  return web::uri::encode_data_string(value);
}

// Turns an error response into a KubeApiError carrying the Status reason and message.
KubeApiError errorFromResponse(int status, const std::string& body, const std::string& what) {
  std::string reason;
  std::string message;
  try {
    const auto parsed = nlohmann::json::parse(body);
    if (parsed.is_object()) {
      if (parsed.contains("reason") && parsed["reason"].is_string()) reason = parsed["reason"];
      if (parsed.contains("message") && parsed["message"].is_string()) message = parsed["message"];
    }
  } catch (const std::exception&) {
    message = body.substr(0, 200);
  }
  return KubeApiError(status, reason,
                      what + " failed: HTTP " + std::to_string(status) +
                          (reason.empty() ? "" : " " + reason) +
                          (message.empty() ? "" : ": " + message));
}

class CppRestKubeClient final : public KubeApi {
 public:
  explicit CppRestKubeClient(const ClusterConfig& config)
      : config_(config),
        tokens_(config),
        client_(web::uri(config.server), makeClientConfig(config, config.requestTimeout)),
        watchClient_(web::uri(config.server), makeClientConfig(config, kWatchIdleTimeout)) {}

  ObjectListPage list(const ResourceType& type, const std::string& namespaceName,
                      const ListOptions& options) override {
    std::string path = collectionPath(type, namespaceName) +
                       "?labelSelector=" + encodeQueryValue(options.labelSelector);
    if (options.limit > 0) path += "&limit=" + std::to_string(options.limit);
    if (!options.continueToken.empty()) {
      path += "&continue=" + encodeQueryValue(options.continueToken);
    }
    const nlohmann::json list =
        call(http::methods::GET, path, nullptr, "list " + std::string(type.plural),
             "application/json", options.stop);
    ObjectListPage page;
    if (list.contains("metadata") && list["metadata"].is_object()) {
      const auto& metadata = list["metadata"];
      page.resourceVersion = metadata.value("resourceVersion", "");
      page.continueToken = metadata.value("continue", "");
    }
    if (list.contains("items") && list["items"].is_array()) {
      for (const auto& item : list["items"]) page.items.push_back(item);
    }
    return page;
  }

  void watch(const ResourceType& type, const std::string& namespaceName,
             const WatchOptions& options, const std::function<bool(std::string_view)>& onLine,
             std::stop_token stop) override {
    const std::string what = "watch " + std::string(type.plural);
    pplx::cancellation_token_source cancel;
    std::stop_callback cancelOnStop(stop, [&cancel] { cancel.cancel(); });
    if (stop.stop_requested()) return;

    std::string path = collectionPath(type, namespaceName) +
                       "?watch=1&labelSelector=" + encodeQueryValue(options.labelSelector) +
                       "&timeoutSeconds=" + std::to_string(options.timeoutSeconds);
    if (!options.resourceVersion.empty()) {
      path += "&resourceVersion=" + encodeQueryValue(options.resourceVersion);
    }
    if (options.allowWatchBookmarks) path += "&allowWatchBookmarks=true";

    http::http_response response;
    try {
      response =
          watchClient_.request(makeRequest(http::methods::GET, path), cancel.get_token()).get();
    } catch (const std::exception& e) {
      if (stop.stop_requested()) return;
      throw KubeApiError(0, "", what + ": request failed: " + e.what());
    }
    if (response.status_code() != http::status_codes::OK) {
      std::string body;
      try {
        body = response.extract_utf8string(true).get();
      } catch (const std::exception&) {
      }
      throw errorFromResponse(response.status_code(), body, what);
    }

    auto buffer = response.body().streambuf();
    std::vector<uint8_t> chunk(64 * 1024);
    std::string pending;
    while (true) {
      const size_t available = static_cast<size_t>(std::max<std::streamsize>(buffer.in_avail(), 0));
      const size_t want = std::clamp<size_t>(available, 1, chunk.size());
      size_t got = 0;
      try {
        got = buffer.getn(chunk.data(), want).get();
      } catch (const std::exception& e) {
        if (stop.stop_requested()) return;
        throw KubeApiError(0, "", what + ": stream broke: " + e.what());
      }
      if (got == 0) break;  // the server ended the stream
      pending.append(reinterpret_cast<const char*>(chunk.data()), got);
      size_t start = 0;
      for (size_t newline = pending.find('\n', start); newline != std::string::npos;
           newline = pending.find('\n', start)) {
        std::string_view line(pending.data() + start, newline - start);
        start = newline + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (!onLine(line) || stop.stop_requested()) {
          cancel.cancel();
          return;
        }
      }
      pending.erase(0, start);
    }
    if (stop.stop_requested()) return;
    // A last event without a trailing newline is still an event.
    if (!pending.empty()) onLine(pending);
  }

  std::optional<nlohmann::json> get(const ResourceType& type, const std::string& namespaceName,
                                    const std::string& name) override {
    try {
      return call(http::methods::GET, objectPath(type, namespaceName, name), nullptr,
                  describe("get", type, namespaceName, name));
    } catch (const KubeApiError& e) {
      if (e.status() == 404) return std::nullopt;
      throw;
    }
  }

  nlohmann::json create(const ResourceType& type, const std::string& namespaceName,
                        const nlohmann::json& object, const CreateOptions& options) override {
    std::string path = collectionPath(type, namespaceName);
    if (options.dryRun) path += "?dryRun=All";
    return call(http::methods::POST, path, &object,
                "create " + std::string(type.kind) + " in " + namespaceName);
  }

  nlohmann::json update(const ResourceType& type, const std::string& namespaceName,
                        const std::string& name, const nlohmann::json& object) override {
    return call(http::methods::PUT, objectPath(type, namespaceName, name), &object,
                describe("update", type, namespaceName, name));
  }

  nlohmann::json mergePatch(const ResourceType& type, const std::string& namespaceName,
                            const std::string& name, const nlohmann::json& patch) override {
    return call(http::methods::PATCH, objectPath(type, namespaceName, name), &patch,
                describe("patch", type, namespaceName, name), "application/merge-patch+json");
  }

  bool remove(const ResourceType& type, const std::string& namespaceName,
              const std::string& name) override {
    try {
      call(http::methods::DEL, objectPath(type, namespaceName, name), nullptr,
           describe("delete", type, namespaceName, name));
      return true;
    } catch (const KubeApiError& e) {
      if (e.status() == 404) return false;
      throw;
    }
  }

 private:
  static client::http_client_config makeClientConfig(const ClusterConfig& config,
                                                     std::chrono::milliseconds timeout) {
    client::http_client_config clientConfig;
    clientConfig.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    clientConfig.set_validate_certificates(!config.insecureSkipTlsVerify);
    clientConfig.set_ssl_context_callback([config](boost::asio::ssl::context& context) {
      if (!config.caData.empty()) {
        context.add_certificate_authority(
            boost::asio::buffer(config.caData.data(), config.caData.size()));
      } else if (!config.caFile.empty()) {
        context.load_verify_file(config.caFile.string());
      }
      if (!config.clientCertData.empty()) {
        context.use_certificate_chain(
            boost::asio::buffer(config.clientCertData.data(), config.clientCertData.size()));
      } else if (!config.clientCertFile.empty()) {
        context.use_certificate_chain_file(config.clientCertFile.string());
      }
      if (!config.clientKeyData.empty()) {
        context.use_private_key(
            boost::asio::buffer(config.clientKeyData.data(), config.clientKeyData.size()),
            boost::asio::ssl::context::pem);
      } else if (!config.clientKeyFile.empty()) {
        context.use_private_key_file(config.clientKeyFile.string(), boost::asio::ssl::context::pem);
      }
    });
    return clientConfig;
  }

  static std::string collectionPath(const ResourceType& type, const std::string& namespaceName) {
    std::string path(type.apiPrefix);
    if (!namespaceName.empty()) path += "/namespaces/" + encodeQueryValue(namespaceName);
    path += '/';
    path += type.plural;
    return path;
  }
  static std::string objectPath(const ResourceType& type, const std::string& namespaceName,
                                const std::string& name) {
    return collectionPath(type, namespaceName) + "/" + encodeQueryValue(name);
  }
  static std::string describe(std::string_view verb, const ResourceType& type,
                              const std::string& namespaceName, const std::string& name) {
    std::string text(verb);
    text += ' ';
    text += type.kind;
    text += ' ';
    text += namespaceName;
    text += '/';
    text += name;
    return text;
  }

  http::http_request makeRequest(const http::method& method, const std::string& pathAndQuery) {
    http::http_request request(method);
    request.set_request_uri(web::uri(pathAndQuery));
    request.headers().add("Accept", "application/json");
    std::string token;
    try {
      token = tokens_.token();
    } catch (const ClusterConfigError& e) {
      throw KubeApiError(0, "", e.what());
    }
    if (!token.empty()) request.headers().add("Authorization", "Bearer " + token);
    return request;
  }

  nlohmann::json call(const http::method& method, const std::string& pathAndQuery,
                      const nlohmann::json* body, const std::string& what,
                      const std::string& contentType = "application/json",
                      std::stop_token stop = {}) {
    pplx::cancellation_token_source cancel;
    std::stop_callback cancelOnStop(stop, [&cancel] { cancel.cancel(); });
    int status = 0;
    std::string text;
    for (int attempt = 1;; ++attempt) {
      http::http_request request = makeRequest(method, pathAndQuery);
      if (body != nullptr) request.set_body(body->dump(), contentType);
      try {
        http::http_response response = client_.request(request, cancel.get_token()).get();
        status = response.status_code();
        text = response.extract_utf8string(true).get();
        break;
      } catch (const http::http_exception& e) {
        if (stop.stop_requested()) throw KubeApiError(0, "", what + " cancelled");
        // A kept-alive connection that the API server or a proxy on the way closed fails on its
        // next use (seen against a real API server behind a cut connection): one more attempt
        // opens a fresh one. A timeout is not retried, the caller's deadline holds. A create that
        // did land answers 409 the second time, which every caller already handles.
        if (attempt == 1 && e.error_code() != std::errc::timed_out) continue;
        throw KubeApiError(0, "", what + " failed: " + e.what());
      } catch (const std::exception& e) {
        if (stop.stop_requested()) throw KubeApiError(0, "", what + " cancelled");
        throw KubeApiError(0, "", what + " failed: " + e.what());
      }
    }
    if (status < 200 || status >= 300) throw errorFromResponse(status, text, what);
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw KubeApiError(status, "", what + ": response is not JSON: " + e.what());
    }
  }

  ClusterConfig config_;
  BearerTokenSource tokens_;
  client::http_client client_;
  client::http_client watchClient_;
};

}  // namespace

std::unique_ptr<KubeApi> makeKubeClient(const ClusterConfig& config) {
  if (config.server.empty()) throw ClusterConfigError("cluster configuration has no server URL");
  try {
    return std::make_unique<CppRestKubeClient>(config);
  } catch (const std::exception& e) {
    throw ClusterConfigError("cannot create a Kubernetes client for " + config.server + ": " +
                             e.what());
  }
}

}  // namespace kcache::kube
