#include "tests/fakekube/fake_kube_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kcache::fakekube {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using Request = http::request<http::string_body>;

std::string percentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

// A label selector with existence (key, !key) and equality (key=v, key==v, key!=v) terms.
class LabelSelector {
 public:
  explicit LabelSelector(const std::string& text) {
    for (std::string term : split(text, ',')) {
      if (term.empty()) continue;
      Term parsed;
      if (size_t pos = term.find("!="); pos != std::string::npos) {
        parsed = {term.substr(0, pos), Op::kNotEquals, term.substr(pos + 2)};
      } else if (pos = term.find("=="); pos != std::string::npos) {
        parsed = {term.substr(0, pos), Op::kEquals, term.substr(pos + 2)};
      } else if (pos = term.find('='); pos != std::string::npos) {
        parsed = {term.substr(0, pos), Op::kEquals, term.substr(pos + 1)};
      } else if (term[0] == '!') {
        parsed = {term.substr(1), Op::kNotExists, ""};
      } else {
        parsed = {term, Op::kExists, ""};
      }
      terms_.push_back(std::move(parsed));
    }
  }

  bool matches(const json& pod) const {
    const json labels =
        pod.contains("metadata") ? pod["metadata"].value("labels", json::object()) : json::object();
    for (const Term& term : terms_) {
      const auto it = labels.find(term.key);
      const bool exists = it != labels.end() && it->is_string();
      const std::string value = exists ? it->get<std::string>() : "";
      switch (term.op) {
        case Op::kExists:
          if (!exists) return false;
          break;
        case Op::kNotExists:
          if (exists) return false;
          break;
        case Op::kEquals:
          if (!exists || value != term.value) return false;
          break;
        case Op::kNotEquals:
          if (exists && value == term.value) return false;
          break;
      }
    }
    return true;
  }

 private:
  enum class Op { kExists, kNotExists, kEquals, kNotEquals };
  struct Term {
    std::string key;
    Op op;
    std::string value;
  };
  std::vector<Term> terms_;
};

json statusObject(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"code", code}};
}

std::string reasonFor(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 429:
      return "TooManyRequests";
    default:
      return "InternalError";
  }
}

std::string keyOf(const std::string& namespaceName, const std::string& name) {
  return namespaceName + "/" + name;
}

std::string nowRfc3339() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

struct Event {
  int64_t version;
  std::string type;
  json object;
};

// One open watch stream, as seen by the test controls.
struct WatchStream {
  std::deque<std::string> injected;
  bool drop = false;
  bool bookmarkRequested = false;
};

struct Response {
  int status = 200;
  json body;
};

}  // namespace

class FakeKubeServer::Impl {
 public:
  explicit Impl(FakeKubeOptions options)
      : options_(std::move(options)),
        ca_(makeSelfSignedServerCa()),
        tls_(ssl::context::tls_server),
        acceptor_(io_) {
    tls_.use_certificate_chain(net::buffer(ca_.certificate));
    tls_.use_private_key(net::buffer(ca_.privateKey), ssl::context::pem);
    if (options_.requireClientCertificate) {
      tls_.add_certificate_authority(net::buffer(ca_.certificate));
      tls_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    acceptThread_ = std::thread([this] { acceptLoop(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      for (int fd : openSockets_) ::shutdown(fd, SHUT_RDWR);
    }
    changed_.notify_all();
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    acceptThread_.join();
    std::list<Connection> remaining;
    {
      std::lock_guard lock(mutex_);
      remaining.swap(connections_);
    }
    for (Connection& connection : remaining) connection.thread.join();
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const PemPair& ca() const { return ca_; }

  // ----- test-side state changes -----

  json createPod(json pod) {
    std::lock_guard lock(mutex_);
    json& metadata = pod["metadata"];
    if (!metadata.contains("namespace")) metadata["namespace"] = "default";
    const std::string key = keyOf(metadata["namespace"], metadata["name"]);
    if (pods_.count(key)) throw std::logic_error("fake kube: pod " + key + " exists");
    pod["kind"] = "Pod";
    pod["apiVersion"] = "v1";
    metadata["uid"] = "uid-" + std::to_string(++uidCounter_);
    metadata["creationTimestamp"] = nowRfc3339();
    return storePod(key, std::move(pod), "ADDED");
  }

  json updatePod(json pod) {
    std::lock_guard lock(mutex_);
    const std::string key =
        keyOf(pod["metadata"].value("namespace", "default"), pod["metadata"].value("name", ""));
    const auto it = pods_.find(key);
    if (it == pods_.end()) throw std::logic_error("fake kube: no pod " + key);
    pod["metadata"]["uid"] = it->second["metadata"]["uid"];
    return storePod(key, std::move(pod), "MODIFIED");
  }

  json modifyPod(const std::string& ns, const std::string& name,
                 const std::function<void(json&)>& change) {
    std::lock_guard lock(mutex_);
    const auto it = pods_.find(keyOf(ns, name));
    if (it == pods_.end()) throw std::logic_error("fake kube: no pod " + keyOf(ns, name));
    json pod = it->second;
    change(pod);
    return storePod(it->first, std::move(pod), "MODIFIED");
  }

  void deletePod(const std::string& ns, const std::string& name) {
    std::lock_guard lock(mutex_);
    const auto it = pods_.find(keyOf(ns, name));
    if (it == pods_.end()) return;
    json pod = it->second;
    pods_.erase(it);
    pod["metadata"]["resourceVersion"] = std::to_string(++version_);
    appendEvent("DELETED", pod);
  }

  std::optional<json> pod(const std::string& ns, const std::string& name) const {
    std::lock_guard lock(mutex_);
    const auto it = pods_.find(keyOf(ns, name));
    if (it == pods_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<json> pods() const {
    std::lock_guard lock(mutex_);
    std::vector<json> all;
    for (const auto& [key, pod] : pods_) all.push_back(pod);
    return all;
  }

  int64_t resourceVersion() const {
    std::lock_guard lock(mutex_);
    return version_;
  }

  std::optional<json> lease(const std::string& ns, const std::string& name) const {
    std::lock_guard lock(mutex_);
    const auto it = leases_.find(keyOf(ns, name));
    if (it == leases_.end()) return std::nullopt;
    return it->second;
  }

  json putLease(json lease) {
    std::lock_guard lock(mutex_);
    lease["kind"] = "Lease";
    lease["apiVersion"] = "coordination.k8s.io/v1";
    lease["metadata"]["resourceVersion"] = std::to_string(++version_);
    const std::string key =
        keyOf(lease["metadata"].value("namespace", "default"), lease["metadata"].value("name", ""));
    leases_[key] = lease;
    return lease;
  }

  void dropWatchStreams() {
    std::lock_guard lock(mutex_);
    for (WatchStream* stream : streams_) stream->drop = true;
    changed_.notify_all();
  }

  void expireHistory() {
    std::lock_guard lock(mutex_);
    compactedThrough_ = version_;
    // Open streams keep their own position (as the API server's watch cache does); only new
    // watches from an older version are refused.
    changed_.notify_all();
  }

  void failNextRequests(int count, int status, const std::string& pathContains) {
    std::lock_guard lock(mutex_);
    failuresLeft_ = count;
    failureStatus_ = status;
    failurePath_ = pathContains;
  }

  void delayNextRequests(int count, std::chrono::milliseconds delay,
                         const std::string& pathContains) {
    std::lock_guard lock(mutex_);
    delaysLeft_ = count;
    delay_ = delay;
    delayPath_ = pathContains;
  }

  void sendRawWatchLine(const std::string& line) {
    std::lock_guard lock(mutex_);
    for (WatchStream* stream : streams_) stream->injected.push_back(line);
    changed_.notify_all();
  }

  void sendBookmarks() {
    std::lock_guard lock(mutex_);
    for (WatchStream* stream : streams_) stream->bookmarkRequested = true;
    changed_.notify_all();
  }

  void setBearerToken(const std::string& token) {
    std::lock_guard lock(mutex_);
    options_.bearerToken = token;
  }

  std::vector<ReceivedPatch> patches() const {
    std::lock_guard lock(mutex_);
    return patches_;
  }
  std::vector<WatchRequest> watchRequests() const {
    std::lock_guard lock(mutex_);
    return watchRequests_;
  }
  int64_t listRequests() const { return listRequests_.load(); }
  int64_t totalRequests() const { return totalRequests_.load(); }
  int64_t openWatchStreams() const {
    std::lock_guard lock(mutex_);
    return static_cast<int64_t>(streams_.size());
  }
  int64_t unauthorizedRequests() const { return unauthorized_.load(); }

 private:
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // Called with mutex_ held.
  json storePod(const std::string& key, json pod, const std::string& type) {
    pod["metadata"]["resourceVersion"] = std::to_string(++version_);
    pods_[key] = pod;
    appendEvent(type, pod);
    return pod;
  }

  void appendEvent(const std::string& type, const json& object) {
    history_.push_back(Event{version_, type, object});
    while (history_.size() > options_.historyLimit) {
      compactedThrough_ = std::max(compactedThrough_, history_.front().version);
      history_.pop_front();
    }
    changed_.notify_all();
  }

  void acceptLoop() {
    while (true) {
      tcp::socket socket(io_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mutex_);
      reapFinishedConnections();
      if (stopping_) return;
      if (ec) continue;
      auto done = std::make_shared<std::atomic<bool>>(false);
      const int fd = socket.native_handle();
      openSockets_.insert(fd);
      connections_.push_back(
          Connection{std::thread([this, s = std::move(socket), done, fd]() mutable {
                       serveConnection(std::move(s), fd);
                       done->store(true);
                     }),
                     done});
    }
  }

  // Called with mutex_ held.
  void reapFinishedConnections() {
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void serveConnection(tcp::socket socket, int fd) {
    ssl::stream<tcp::socket> stream(std::move(socket), tls_);
    // Unregistered before the stream closes the descriptor, so that the destructor never shuts
    // down a descriptor number that has been reused by someone else.
    struct Unregister {
      Impl& impl;
      int fd;
      ~Unregister() {
        std::lock_guard lock(impl.mutex_);
        impl.openSockets_.erase(impl.openSockets_.find(fd));
      }
    } unregister{*this, fd};
    beast::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) return;
    beast::flat_buffer buffer;
    while (true) {
      Request request;
      http::read(stream, buffer, request, ec);
      if (ec) return;
      if (!handle(stream, request)) return;
      if (!request.keep_alive()) break;
    }
    stream.shutdown(ec);
  }

  // Returns false when the connection must be closed.
  bool handle(ssl::stream<tcp::socket>& stream, const Request& request) {
    ++totalRequests_;
    const std::string target(request.target());
    const size_t question = target.find('?');
    const std::string path = target.substr(0, question);
    std::map<std::string, std::string> query;
    if (question != std::string::npos) {
      for (const std::string& pair : split(std::string_view(target).substr(question + 1), '&')) {
        const size_t equals = pair.find('=');
        query[percentDecode(pair.substr(0, equals))] =
            equals == std::string::npos ? "" : percentDecode(pair.substr(equals + 1));
      }
    }

    {
      std::unique_lock lock(mutex_);
      if (delaysLeft_ > 0 && (delayPath_.empty() || target.find(delayPath_) != std::string::npos)) {
        --delaysLeft_;
        const auto until = std::chrono::steady_clock::now() + delay_;
        changed_.wait_until(lock, until,
                            [&] { return stopping_ || std::chrono::steady_clock::now() >= until; });
        if (stopping_) return false;
      }
      if (!options_.bearerToken.empty() &&
          std::string(request[http::field::authorization]) != "Bearer " + options_.bearerToken) {
        ++unauthorized_;
        return reply(stream, request, {401, statusObject(401, "Unauthorized", "Unauthorized")});
      }
      if (failuresLeft_ > 0 &&
          (failurePath_.empty() || target.find(failurePath_) != std::string::npos)) {
        --failuresLeft_;
        return reply(stream, request,
                     {failureStatus_,
                      statusObject(failureStatus_, reasonFor(failureStatus_), "injected failure")});
      }
    }

    const std::vector<std::string> parts = split(path, '/');  // "", "api", "v1", ...
    // /api/v1/pods and /api/v1/namespaces/{ns}/pods[/{name}]
    if (parts.size() >= 4 && parts[1] == "api" && parts[2] == "v1") {
      std::string ns;
      std::string name;
      bool podsPath = false;
      if (parts.size() == 4 && parts[3] == "pods") {
        podsPath = true;
      } else if (parts.size() >= 6 && parts[3] == "namespaces" && parts[5] == "pods" &&
                 parts.size() <= 7) {
        podsPath = true;
        ns = parts[4];
        if (parts.size() == 7) name = parts[6];
      }
      if (podsPath) {
        if (name.empty() && request.method() == http::verb::get) {
          if (query["watch"] == "1" || query["watch"] == "true") {
            return watch(stream, request, ns, query);
          }
          return reply(stream, request, list(ns, query));
        }
        if (!name.empty() && request.method() == http::verb::get) {
          std::lock_guard lock(mutex_);
          const auto it = pods_.find(keyOf(ns, name));
          if (it == pods_.end()) {
            return reply(stream, request,
                         {404, statusObject(404, "NotFound", "pods \"" + name + "\" not found")});
          }
          return reply(stream, request, {200, it->second});
        }
        if (!name.empty() && request.method() == http::verb::patch) {
          return reply(stream, request, patch(ns, name, request));
        }
        return reply(stream, request,
                     {405, statusObject(405, "MethodNotAllowed", "method not allowed")});
      }
    }
    // /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]
    if (parts.size() >= 7 && parts[1] == "apis" && parts[2] == "coordination.k8s.io" &&
        parts[3] == "v1" && parts[4] == "namespaces" && parts[6] == "leases") {
      return reply(stream, request, leaseCall(request, parts[5], parts.size() > 7 ? parts[7] : ""));
    }
    return reply(stream, request, {404, statusObject(404, "NotFound", "no route " + path)});
  }

  bool reply(ssl::stream<tcp::socket>& stream, const Request& request, const Response& response) {
    http::response<http::string_body> message{static_cast<http::status>(response.status),
                                              request.version()};
    message.set(http::field::content_type, "application/json");
    message.keep_alive(request.keep_alive());
    message.body() = response.body.dump();
    message.prepare_payload();
    beast::error_code ec;
    http::write(stream, message, ec);
    return !ec;
  }

  Response list(const std::string& ns, std::map<std::string, std::string>& query) {
    ++listRequests_;
    std::lock_guard lock(mutex_);
    const int64_t limit = query["limit"].empty() ? 0 : std::stoll(query["limit"]);
    std::shared_ptr<Snapshot> snapshot;
    size_t offset = 0;
    if (!query["continue"].empty()) {
      // continue tokens look like "<snapshot id>:<offset>"
      const auto fields = split(query["continue"], ':');
      const auto it =
          fields.size() == 2 ? snapshots_.find(std::stoll(fields[0])) : snapshots_.end();
      if (it == snapshots_.end() || it->second->version < compactedThrough_) {
        return {410, statusObject(410, "Expired",
                                  "The provided continue parameter is too old to display a "
                                  "consistent list result.")};
      }
      snapshot = it->second;
      offset = std::stoull(fields[1]);
    } else {
      snapshot = std::make_shared<Snapshot>();
      snapshot->version = version_;
      const LabelSelector selector(query["labelSelector"]);
      for (const auto& [key, pod] : pods_) {
        if ((ns.empty() || pod["metadata"]["namespace"] == ns) && selector.matches(pod)) {
          snapshot->items.push_back(pod);
        }
      }
    }
    json items = json::array();
    size_t end = snapshot->items.size();
    if (limit > 0) end = std::min(end, offset + static_cast<size_t>(limit));
    for (size_t i = offset; i < end; ++i) items.push_back(snapshot->items[i]);
    json metadata = {{"resourceVersion", std::to_string(snapshot->version)}};
    if (end < snapshot->items.size()) {
      const int64_t id = ++snapshotCounter_;
      snapshots_[id] = snapshot;
      metadata["continue"] = std::to_string(id) + ":" + std::to_string(end);
    }
    return {200,
            {{"kind", "PodList"}, {"apiVersion", "v1"}, {"metadata", metadata}, {"items", items}}};
  }

  Response patch(const std::string& ns, const std::string& name, const Request& request) {
    ReceivedPatch received;
    received.namespaceName = ns;
    received.name = name;
    received.contentType = std::string(request[http::field::content_type]);
    received.body = json::parse(request.body(), nullptr, false);
    // One critical section: a test that sees the patched pod also sees the patch recorded.
    std::lock_guard lock(mutex_);
    Response response = applyPatch(ns, name, received);
    received.status = response.status;
    patches_.push_back(std::move(received));
    return response;
  }

  // Called with mutex_ held.
  Response applyPatch(const std::string& ns, const std::string& name,
                      const ReceivedPatch& received) {
    if (received.contentType != "application/merge-patch+json") {
      return {415, statusObject(415, "UnsupportedMediaType",
                                "the body of the request was in an unknown format")};
    }
    if (received.body.is_discarded() || !received.body.is_object()) {
      return {400, statusObject(400, "BadRequest", "merge patch is not a JSON object")};
    }
    const auto it = pods_.find(keyOf(ns, name));
    if (it == pods_.end()) {
      return {404, statusObject(404, "NotFound", "pods \"" + name + "\" not found")};
    }
    json pod = it->second;
    const json& patchMetadata = received.body.value("metadata", json::object());
    if (patchMetadata.contains("uid") && patchMetadata["uid"] != pod["metadata"]["uid"]) {
      return {409, statusObject(
                       409, "Conflict",
                       "Precondition failed: UID in precondition: " + patchMetadata["uid"].dump())};
    }
    const json identity = pod["metadata"];
    pod.merge_patch(received.body);
    for (const char* field : {"name", "namespace", "uid", "creationTimestamp"}) {
      pod["metadata"][field] = identity[field];
    }
    return {200, storePod(it->first, std::move(pod), "MODIFIED")};
  }

  Response leaseCall(const Request& request, const std::string& ns, const std::string& name) {
    std::lock_guard lock(mutex_);
    if (request.method() == http::verb::get && !name.empty()) {
      const auto it = leases_.find(keyOf(ns, name));
      if (it == leases_.end()) {
        return {404, statusObject(404, "NotFound", "leases \"" + name + "\" not found")};
      }
      return {200, it->second};
    }
    json body = json::parse(request.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("metadata") ||
        !body["metadata"].is_object()) {
      return {400, statusObject(400, "BadRequest", "lease body is not a Lease")};
    }
    if (request.method() == http::verb::post && name.empty()) {
      const std::string leaseName = body["metadata"].value("name", "");
      if (leases_.count(keyOf(ns, leaseName))) {
        return {409,
                statusObject(409, "AlreadyExists", "leases \"" + leaseName + "\" already exists")};
      }
      body["metadata"]["namespace"] = ns;
      body["metadata"]["resourceVersion"] = std::to_string(++version_);
      body["kind"] = "Lease";
      body["apiVersion"] = "coordination.k8s.io/v1";
      leases_[keyOf(ns, leaseName)] = body;
      return {201, body};
    }
    if (request.method() == http::verb::put && !name.empty()) {
      const auto it = leases_.find(keyOf(ns, name));
      if (it == leases_.end()) {
        return {404, statusObject(404, "NotFound", "leases \"" + name + "\" not found")};
      }
      if (body["metadata"].value("resourceVersion", "") !=
          it->second["metadata"].value("resourceVersion", "")) {
        return {409, statusObject(409, "Conflict",
                                  "Operation cannot be fulfilled on leases.coordination.k8s.io "
                                  "\"" +
                                      name + "\": the object has been modified")};
      }
      body["metadata"]["resourceVersion"] = std::to_string(++version_);
      it->second = body;
      return {200, body};
    }
    return {405, statusObject(405, "MethodNotAllowed", "method not allowed")};
  }

  bool watch(ssl::stream<tcp::socket>& stream, const Request& request, const std::string& ns,
             std::map<std::string, std::string>& query) {
    const LabelSelector selector(query["labelSelector"]);
    const bool bookmarks = query["allowWatchBookmarks"] == "true";
    const int timeoutSeconds =
        query["timeoutSeconds"].empty() ? 1800 : std::stoi(query["timeoutSeconds"]);
    const std::string requested = query["resourceVersion"];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);

    http::response<http::empty_body> header{http::status::ok, request.version()};
    header.set(http::field::content_type, "application/json");
    header.chunked(true);
    http::response_serializer<http::empty_body> serializer{header};
    beast::error_code ec;
    http::write_header(stream, serializer, ec);
    if (ec) return false;
    auto sendChunk = [&](const std::string& data) {
      net::write(stream, http::make_chunk(net::buffer(data)), ec);
      return !ec;
    };
    auto finish = [&] {
      net::write(stream, http::make_chunk_last(), ec);
      return !ec;
    };
    auto matches = [&](const json& object) {
      return (ns.empty() || object["metadata"]["namespace"] == ns) && selector.matches(object);
    };
    auto eventLine = [](const std::string& type, const json& object) {
      return json{{"type", type}, {"object", object}}.dump() + "\n";
    };

    WatchStream self;
    int64_t cursor = 0;
    std::string initial;
    {
      std::lock_guard lock(mutex_);
      watchRequests_.push_back(WatchRequest{ns, requested, bookmarks});
      if (requested.empty() || requested == "0") {
        for (const auto& [key, pod] : pods_) {
          if (matches(pod)) initial += eventLine("ADDED", pod);
        }
        cursor = version_;
      } else {
        cursor = std::stoll(requested);
        if (cursor < compactedThrough_) {
          const std::string gone =
              eventLine("ERROR", statusObject(410, "Expired",
                                              "too old resource version: " + requested + " (" +
                                                  std::to_string(compactedThrough_) + ")"));
          return sendChunk(gone) && finish();
        }
      }
      streams_.insert(&self);
    }
    struct Unregister {
      Impl& impl;
      WatchStream* stream;
      ~Unregister() {
        std::lock_guard lock(impl.mutex_);
        impl.streams_.erase(stream);
      }
    } unregister{*this, &self};

    if (!initial.empty() && !sendChunk(initial)) return false;
    auto lastBookmark = std::chrono::steady_clock::now();
    while (true) {
      std::string out;
      bool drop = false;
      {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, std::chrono::milliseconds(50), [&] {
          return stopping_ || self.drop || !self.injected.empty() || self.bookmarkRequested ||
                 (!history_.empty() && history_.back().version > cursor);
        });
        if (stopping_) return false;
        drop = self.drop;
        if (!drop) {
          auto it = std::upper_bound(history_.begin(), history_.end(), cursor,
                                     [](int64_t v, const Event& e) { return v < e.version; });
          for (; it != history_.end(); ++it) {
            if (matches(it->object)) out += eventLine(it->type, it->object);
          }
          cursor = std::max(cursor, history_.empty() ? cursor : history_.back().version);
          for (const std::string& line : self.injected) out += line + "\n";
          self.injected.clear();
          const auto now = std::chrono::steady_clock::now();
          const bool periodic = options_.bookmarkInterval.count() > 0 &&
                                now - lastBookmark >= options_.bookmarkInterval;
          if (bookmarks && (self.bookmarkRequested || periodic)) {
            cursor = std::max(cursor, version_);
            out += eventLine("BOOKMARK",
                             {{"kind", "Pod"},
                              {"apiVersion", "v1"},
                              {"metadata", {{"resourceVersion", std::to_string(cursor)}}}});
            lastBookmark = now;
          }
          self.bookmarkRequested = false;
        }
      }
      if (!drop && clientWentAway(stream.lowest_layer().native_handle())) return false;
      if (drop) {
        // Cut the connection mid-stream, as a network failure or an API server restart would.
        ::shutdown(stream.lowest_layer().native_handle(), SHUT_RDWR);
        return false;
      }
      if (!out.empty() && !sendChunk(out)) return false;
      if (std::chrono::steady_clock::now() >= deadline) return finish();
    }
  }

  // A watch client sends nothing while it streams: anything readable (EOF, a TLS close_notify)
  // means it closed its end.
  static bool clientWentAway(int fd) {
    pollfd entry{fd, POLLIN | POLLRDHUP, 0};
    return ::poll(&entry, 1, 0) > 0;
  }

  struct Snapshot {
    int64_t version = 0;
    std::vector<json> items;
  };

  FakeKubeOptions options_;
  PemPair ca_;
  ssl::context tls_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread acceptThread_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::multiset<int> openSockets_;
  std::list<Connection> connections_;
  std::set<WatchStream*> streams_;

  int64_t version_ = 0;
  int64_t compactedThrough_ = 0;
  int64_t uidCounter_ = 0;
  int64_t snapshotCounter_ = 0;
  std::map<std::string, json> pods_;
  std::map<std::string, json> leases_;
  std::deque<Event> history_;
  std::map<int64_t, std::shared_ptr<Snapshot>> snapshots_;

  int delaysLeft_ = 0;
  std::chrono::milliseconds delay_{0};
  std::string delayPath_;
  int failuresLeft_ = 0;
  int failureStatus_ = 500;
  std::string failurePath_;

  std::vector<ReceivedPatch> patches_;
  std::vector<WatchRequest> watchRequests_;
  std::atomic<int64_t> listRequests_{0};
  std::atomic<int64_t> totalRequests_{0};
  std::atomic<int64_t> unauthorized_{0};
};

FakeKubeServer::FakeKubeServer(FakeKubeOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
FakeKubeServer::~FakeKubeServer() = default;

std::string FakeKubeServer::url() const {
  return impl_->url();
}
const PemPair& FakeKubeServer::serverCa() const {
  return impl_->ca();
}
nlohmann::json FakeKubeServer::createPod(nlohmann::json pod) {
  return impl_->createPod(std::move(pod));
}
nlohmann::json FakeKubeServer::updatePod(nlohmann::json pod) {
  return impl_->updatePod(std::move(pod));
}
nlohmann::json FakeKubeServer::modifyPod(const std::string& ns, const std::string& name,
                                         const std::function<void(nlohmann::json&)>& change) {
  return impl_->modifyPod(ns, name, change);
}
void FakeKubeServer::deletePod(const std::string& ns, const std::string& name) {
  impl_->deletePod(ns, name);
}
std::optional<nlohmann::json> FakeKubeServer::pod(const std::string& ns,
                                                  const std::string& name) const {
  return impl_->pod(ns, name);
}
std::vector<nlohmann::json> FakeKubeServer::pods() const {
  return impl_->pods();
}
int64_t FakeKubeServer::resourceVersion() const {
  return impl_->resourceVersion();
}
std::optional<nlohmann::json> FakeKubeServer::lease(const std::string& ns,
                                                    const std::string& name) const {
  return impl_->lease(ns, name);
}
nlohmann::json FakeKubeServer::putLease(nlohmann::json lease) {
  return impl_->putLease(std::move(lease));
}
void FakeKubeServer::dropWatchStreams() {
  impl_->dropWatchStreams();
}
void FakeKubeServer::expireHistory() {
  impl_->expireHistory();
}
void FakeKubeServer::failNextRequests(int count, int status, const std::string& pathContains) {
  impl_->failNextRequests(count, status, pathContains);
}
void FakeKubeServer::delayNextRequests(int count, std::chrono::milliseconds delay,
                                       const std::string& pathContains) {
  impl_->delayNextRequests(count, delay, pathContains);
}
void FakeKubeServer::sendRawWatchLine(const std::string& line) {
  impl_->sendRawWatchLine(line);
}
void FakeKubeServer::sendErrorEvent(int code, const std::string& reason,
                                    const std::string& message) {
  impl_->sendRawWatchLine(
      nlohmann::json{{"type", "ERROR"}, {"object", statusObject(code, reason, message)}}.dump());
}
void FakeKubeServer::sendBookmarks() {
  impl_->sendBookmarks();
}
void FakeKubeServer::setBearerToken(const std::string& token) {
  impl_->setBearerToken(token);
}
std::vector<ReceivedPatch> FakeKubeServer::patches() const {
  return impl_->patches();
}
std::vector<WatchRequest> FakeKubeServer::watchRequests() const {
  return impl_->watchRequests();
}
int64_t FakeKubeServer::totalRequests() const {
  return impl_->totalRequests();
}
int64_t FakeKubeServer::listRequests() const {
  return impl_->listRequests();
}
int64_t FakeKubeServer::openWatchStreams() const {
  return impl_->openWatchStreams();
}
int64_t FakeKubeServer::unauthorizedRequests() const {
  return impl_->unauthorizedRequests();
}

nlohmann::json makeTaggedPod(const std::string& namespaceName, const std::string& name,
                             const std::string& key) {
  const std::string argoTemplate =
      R"({"name":")" + name + R"(","container":{"image":"python:3.11","command":["python"]}})";
  json pod;
  pod["apiVersion"] = "v1";
  pod["kind"] = "Pod";
  json& metadata = pod["metadata"];
  metadata["name"] = name;
  metadata["namespace"] = namespaceName;
  metadata["labels"]["pipelines.kubeflow.org/cache_enabled"] = "true";
  metadata["labels"]["pipelines.kubeflow.org/cache_id"] = "";
  metadata["labels"]["workflows.argoproj.io/workflow"] = "wf-1";
  metadata["annotations"]["pipelines.kubeflow.org/execution_cache_key"] = key;
  json wait = {{"name", "wait"}, {"image", "argoexec"}};
  json main = {{"name", "main"}, {"image", "python:3.11"}};
  main["env"] = json::array({json{{"name", "ARGO_TEMPLATE"}, {"value", argoTemplate}}});
  pod["spec"]["containers"] = json::array({wait, main});
  pod["status"]["phase"] = "Running";
  return pod;
}

void markSucceeded(nlohmann::json& pod, const std::string& outputs, const std::string& startedAt,
                   const std::string& finishedAt) {
  pod["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true";
  pod["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = outputs;
  pod["status"]["phase"] = "Succeeded";
  auto terminated = [&](const char* container) {
    json status;
    status["name"] = container;
    status["state"]["terminated"] = {
        {"exitCode", 0}, {"startedAt", startedAt}, {"finishedAt", finishedAt}};
    return status;
  };
  pod["status"]["containerStatuses"] = json::array({terminated("wait"), terminated("main")});
}

}  // namespace kcache::fakekube
