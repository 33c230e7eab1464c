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
#include <stdexcept>
#include <thread>
#include <type_traits>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tests/fakekube/object_store.h"
#include "tests/support/test_stamp_keys.h"

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
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
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

// "application/json; charset=utf-8" -> "application/json".
std::string mediaType(std::string_view contentType) {
  contentType = contentType.substr(0, contentType.find(';'));
  while (!contentType.empty() && contentType.back() == ' ') contentType.remove_suffix(1);
  return std::string(contentType);
}

std::string stringField(const json& object, const char* field) {
  if (!object.is_object()) return "";
  const auto it = object.find(field);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// Where a request goes: /api/v1/... or /apis/<group>/<version>/..., then <plural> (across
// namespaces) or namespaces/<ns>/<plural>[/<name>].
struct Route {
  std::string apiVersion;
  std::string plural;
  std::string namespaceName;  // "" for the collection across namespaces
  std::string name;           // "" for the collection
};

std::optional<Route> parseRoute(const std::string& path) {
  std::vector<std::string> parts = split(path, '/');  // "", "api", "v1", ...
  for (std::string& part : parts) part = percentDecode(part);
  Route route;
  size_t rest = 0;
  if (parts.size() >= 4 && parts[0].empty() && parts[1] == "api" && parts[2] == "v1") {
    route.apiVersion = "v1";
    rest = 3;
  } else if (parts.size() >= 5 && parts[0].empty() && parts[1] == "apis" && !parts[2].empty() &&
             !parts[3].empty()) {
    route.apiVersion = parts[2] + "/" + parts[3];
    rest = 4;
  } else {
    return std::nullopt;
  }
  const size_t remaining = parts.size() - rest;
  if (remaining == 1) {
    route.plural = parts[rest];
  } else if ((remaining == 3 || remaining == 4) && parts[rest] == "namespaces") {
    route.namespaceName = parts[rest + 1];
    route.plural = parts[rest + 2];
    if (remaining == 4) route.name = parts[rest + 3];
    if (route.namespaceName.empty() || (remaining == 4 && route.name.empty())) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (route.plural.empty() || route.plural == "namespaces") return std::nullopt;
  return route;
}

// One open watch stream, as seen by the test controls.
struct WatchStream {
  std::deque<std::string> injected;
  bool drop = false;
  bool bookmarkRequested = false;
};

// The next `count` requests matching a target substring and a method (both optional).
struct RequestMatcher {
  int count = 0;
  std::string pathContains;
  std::string method;

  bool takeIfMatches(const std::string& target, std::string_view requestMethod) {
    if (count <= 0) return false;
    if (!pathContains.empty() && target.find(pathContains) == std::string::npos) return false;
    if (!method.empty() && method != requestMethod) return false;
    --count;
    return true;
  }
};

}  // namespace

class FakeKubeServer::Impl {
 public:
  explicit Impl(FakeKubeOptions options)
      : options_(std::move(options)),
        ca_(makeSelfSignedServerCa()),
        tls_(ssl::context::tls_server),
        acceptor_(io_),
        store_(options_.historyLimit) {
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

  json createObject(const std::string& plural, json object) {
    if (!object.is_object()) throw std::logic_error("fake kube: a " + plural + " is not an object");
    if (object["metadata"].is_null()) object["metadata"] = json::object();
    std::string ns = stringField(object["metadata"], "namespace");
    if (ns.empty()) ns = "default";
    std::lock_guard lock(mutex_);
    const ResourceInfo type =
        store_.resource(plural, stringField(object, "apiVersion"), stringField(object, "kind"));
    return applied(store_.create(type, ns, std::move(object), false), "create", plural, ns);
  }

  json updateObject(const std::string& plural, json object) {
    std::lock_guard lock(mutex_);
    return replace(plural, std::move(object));
  }

  json modifyObject(const std::string& plural, const std::string& ns, const std::string& name,
                    const std::function<void(json&)>& change) {
    std::lock_guard lock(mutex_);
    std::optional<json> object = store_.object(plural, ns, name);
    if (!object) throw std::logic_error("fake kube: no " + plural + " " + ns + "/" + name);
    change(*object);
    return replace(plural, std::move(*object));
  }

  void deleteObject(const std::string& plural, const std::string& ns, const std::string& name) {
    std::lock_guard lock(mutex_);
    if (!store_.object(plural, ns, name)) return;
    applied(store_.remove(store_.resource(plural), ns, name, nullptr, false), "delete", plural,
            ns + "/" + name);
  }

  std::optional<json> object(const std::string& plural, const std::string& ns,
                             const std::string& name) const {
    std::lock_guard lock(mutex_);
    return store_.object(plural, ns, name);
  }

  std::vector<json> objects(const std::string& plural) const {
    std::lock_guard lock(mutex_);
    return store_.objects(plural);
  }

  int64_t resourceVersion() const {
    std::lock_guard lock(mutex_);
    return store_.version();
  }

  void dropWatchStreams() {
    std::lock_guard lock(mutex_);
    for (WatchStream* stream : streams_) stream->drop = true;
    changed_.notify_all();
  }

  void expireHistory() {
    std::lock_guard lock(mutex_);
    // Open streams keep their own position (as the API server's watch cache does); only new
    // watches and continue tokens from an older version are refused.
    store_.expireHistory();
    changed_.notify_all();
  }

  void failNextRequests(int count, int status, const std::string& pathContains,
                        const std::string& method) {
    std::lock_guard lock(mutex_);
    failures_ = RequestMatcher{count, pathContains, method};
    failureStatus_ = status;
  }

  void delayNextRequests(int count, std::chrono::milliseconds delay,
                         const std::string& pathContains, const std::string& method) {
    std::lock_guard lock(mutex_);
    delays_ = RequestMatcher{count, pathContains, method};
    delay_ = delay;
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

  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  void clearRequests() {
    std::lock_guard lock(mutex_);
    requestsCleared_ += requests_.size();
    requests_.clear();
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

  // Called with mutex_ held: wakes the watch streams after a test-side change, or throws with
  // the Status message when the store refused it.
  json applied(ApiResult result, const std::string& verb, const std::string& plural,
               const std::string& what) {
    if (!result.ok()) {
      throw std::logic_error("fake kube: " + verb + " " + plural + " " + what + ": " +
                             stringField(result.body, "message"));
    }
    changed_.notify_all();
    return std::move(result.body);
  }

  // Called with mutex_ held. An unconditional update, whatever uid and resourceVersion say.
  json replace(const std::string& plural, json object) {
    if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
      throw std::logic_error("fake kube: a " + plural + " without metadata");
    }
    json& metadata = object["metadata"];
    const std::string ns = metadata.value("namespace", "default");
    const std::string name = metadata.value("name", "");
    const std::optional<json> current = store_.object(plural, ns, name);
    metadata.erase("uid");
    if (current) metadata["resourceVersion"] = (*current)["metadata"]["resourceVersion"];
    return applied(store_.update(store_.resource(plural), ns, name, std::move(object), false),
                   "update", plural, ns + "/" + name);
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

  // One request being answered: what the handlers need besides the HTTP message.
  struct Call {
    const Request& request;
    size_t logIndex;
    std::map<std::string, std::string> query;
    json body;  // null when none or not JSON
  };

  // Returns false when the connection must be closed.
  bool handle(ssl::stream<tcp::socket>& stream, const Request& request) {
    ++totalRequests_;
    const std::string target(request.target());
    const size_t question = target.find('?');
    const std::string path = target.substr(0, question);
    const std::string rawQuery = question == std::string::npos ? "" : target.substr(question + 1);
    Call call{request, 0, {}, nullptr};
    if (!rawQuery.empty()) {
      for (const std::string& pair : split(rawQuery, '&')) {
        const size_t equals = pair.find('=');
        call.query[percentDecode(pair.substr(0, equals))] =
            equals == std::string::npos ? "" : percentDecode(pair.substr(equals + 1));
      }
    }
    if (!request.body().empty()) {
      call.body = json::parse(request.body(), nullptr, false);
      if (call.body.is_discarded()) call.body = nullptr;
    }
    const std::string method(request.method_string());

    {
      std::unique_lock lock(mutex_);
      call.logIndex = requestsCleared_ + requests_.size();
      requests_.push_back(ReceivedRequest{
          method, path, rawQuery, std::string(request[http::field::content_type]), call.body, 0});
      if (delays_.takeIfMatches(target, method)) {
        const auto until = std::chrono::steady_clock::now() + delay_;
        changed_.wait_until(lock, until,
                            [&] { return stopping_ || std::chrono::steady_clock::now() >= until; });
        if (stopping_) return false;
      }
      if (!options_.bearerToken.empty() &&
          std::string(request[http::field::authorization]) != "Bearer " + options_.bearerToken) {
        ++unauthorized_;
        lock.unlock();
        return reply(stream, call, {401, statusObject(401, "Unauthorized", "Unauthorized")});
      }
      if (failures_.takeIfMatches(target, method)) {
        const ApiResult failure{
            failureStatus_,
            statusObject(failureStatus_, reasonForStatus(failureStatus_), "injected failure")};
        lock.unlock();
        return reply(stream, call, failure);
      }
    }

    const std::optional<Route> route = parseRoute(path);
    if (!route) return reply(stream, call, noRoute());
    const std::optional<ResourceInfo> type = locked([&] {
      return store_.served(route->plural, route->apiVersion, stringField(call.body, "kind"));
    });
    if (!type) return reply(stream, call, noRoute());
    return dispatch(stream, call, *type, *route);
  }

  bool dispatch(ssl::stream<tcp::socket>& stream, Call& call, const ResourceInfo& type,
                const Route& route) {
    const std::string& ns = route.namespaceName;
    const std::string& name = route.name;
    const http::verb verb = call.request.method();
    bool dryRun = false;
    if (const auto it = call.query.find("dryRun"); it != call.query.end()) {
      if (it->second != "All") {
        return reply(
            stream, call,
            {400, statusObject(400, "BadRequest", "Invalid dry run value: " + it->second)});
      }
      dryRun = true;
    }
    if (verb == http::verb::get && name.empty()) {
      const std::string watchFlag = call.query["watch"];
      if (watchFlag == "1" || watchFlag == "true") return watch(stream, call, type, ns);
      return reply(stream, call, list(call, type, ns));
    }
    if (verb == http::verb::get)
      return reply(stream, call, locked([&] { return store_.get(type, ns, name); }));
    if (verb == http::verb::patch && !name.empty()) {
      return reply(stream, call, patch(call, type, ns, name, dryRun));
    }
    const bool create = verb == http::verb::post && name.empty() && !ns.empty();
    const bool update = verb == http::verb::put && !name.empty();
    if (create || update) {
      if (mediaType(std::string(call.request[http::field::content_type])) != "application/json") {
        return reply(stream, call, unsupportedMediaType());
      }
      if (!call.body.is_object()) {
        return reply(
            stream, call,
            {400, statusObject(400, "BadRequest", "the body of the request is not a JSON object")});
      }
      return reply(stream, call, locked([&] {
                     return notifyIfStored(create
                                               ? store_.create(type, ns, call.body, dryRun)
                                               : store_.update(type, ns, name, call.body, dryRun),
                                           dryRun);
                   }));
    }
    if (verb == http::verb::delete_ && !name.empty()) {
      return reply(stream, call, locked([&] {
                     return notifyIfStored(store_.remove(type, ns, name, call.body, dryRun),
                                           dryRun);
                   }));
    }
    return reply(stream, call,
                 {405, statusObject(405, "MethodNotAllowed",
                                    "the server does not allow this method on the requested "
                                    "resource")});
  }

  // Runs a store call under the lock (replies are written without it).
  template <typename StoreCall>
  std::invoke_result_t<StoreCall> locked(StoreCall storeCall) {
    std::lock_guard lock(mutex_);
    return storeCall();
  }

  static ApiResult noRoute() {
    return {404, statusObject(404, "NotFound", "the server could not find the requested resource")};
  }
  static ApiResult unsupportedMediaType() {
    return {415, statusObject(415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format")};
  }

  // Called with mutex_ held.
  ApiResult notifyIfStored(ApiResult result, bool dryRun) {
    if (result.ok() && !dryRun) changed_.notify_all();
    return result;
  }

  bool reply(ssl::stream<tcp::socket>& stream, const Call& call, const ApiResult& result) {
    noteStatus(call, result.status);
    http::response<http::string_body> message{static_cast<http::status>(result.status),
                                              call.request.version()};
    message.set(http::field::content_type, "application/json");
    message.keep_alive(call.request.keep_alive());
    message.body() = result.body.dump();
    message.prepare_payload();
    beast::error_code ec;
    http::write(stream, message, ec);
    return !ec;
  }

  void noteStatus(const Call& call, int status) {
    std::lock_guard lock(mutex_);
    if (call.logIndex >= requestsCleared_ && call.logIndex - requestsCleared_ < requests_.size()) {
      requests_[call.logIndex - requestsCleared_].status = status;
    }
  }

  ApiResult list(Call& call, const ResourceInfo& type, const std::string& ns) {
    ++listRequests_;
    int64_t limit = 0;
    try {
      if (!call.query["limit"].empty()) limit = std::stoll(call.query["limit"]);
    } catch (const std::exception&) {
      return {400, statusObject(400, "BadRequest", "invalid limit " + call.query["limit"])};
    }
    std::lock_guard lock(mutex_);
    return store_.list(type, ns, call.query["labelSelector"], limit, call.query["continue"]);
  }

  ApiResult patch(const Call& call, const ResourceInfo& type, const std::string& ns,
                  const std::string& name, bool dryRun) {
    ReceivedPatch received;
    received.plural = type.plural;
    received.namespaceName = ns;
    received.name = name;
    received.contentType = std::string(call.request[http::field::content_type]);
    received.body = json::parse(call.request.body(), nullptr, false);
    // One critical section: a test that sees the patched object also sees the patch recorded.
    std::lock_guard lock(mutex_);
    ApiResult result;
    if (mediaType(received.contentType) != "application/merge-patch+json") {
      result = unsupportedMediaType();
    } else if (received.body.is_discarded() || !received.body.is_object()) {
      result = {400, statusObject(400, "BadRequest", "merge patch is not a JSON object")};
    } else {
      result = notifyIfStored(store_.mergePatch(type, ns, name, received.body, dryRun), dryRun);
    }
    received.status = result.status;
    patches_.push_back(std::move(received));
    return result;
  }

  bool watch(ssl::stream<tcp::socket>& stream, Call& call, const ResourceInfo& type,
             const std::string& ns) {
    std::optional<LabelSelector> selector;
    try {
      selector.emplace(call.query["labelSelector"]);
    } catch (const std::invalid_argument& e) {
      return reply(stream, call, {400, statusObject(400, "BadRequest", e.what())});
    }
    const bool bookmarks = call.query["allowWatchBookmarks"] == "true";
    int timeoutSeconds = 1800;
    try {
      if (!call.query["timeoutSeconds"].empty()) {
        timeoutSeconds = std::stoi(call.query["timeoutSeconds"]);
      }
    } catch (const std::exception&) {
      return reply(stream, call, {400, statusObject(400, "BadRequest", "invalid timeoutSeconds")});
    }
    const std::string requested = call.query["resourceVersion"];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
    auto lines = [](const std::vector<json>& events) {
      std::string out;
      for (const json& event : events) out += event.dump() + "\n";
      return out;
    };

    WatchStream self;
    ObjectStore::WatchStart start;
    {
      std::lock_guard lock(mutex_);
      watchRequests_.push_back(WatchRequest{type.plural, ns, requested, bookmarks});
      start = store_.startWatch(type, ns, *selector, requested);
      if (!start.expired) streams_.insert(&self);
    }
    struct Unregister {
      Impl& impl;
      WatchStream* stream;
      ~Unregister() {
        std::lock_guard lock(impl.mutex_);
        impl.streams_.erase(stream);
      }
    } unregister{*this, &self};

    noteStatus(call, 200);
    http::response<http::empty_body> header{http::status::ok, call.request.version()};
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
    // A version that is gone gets one ERROR event carrying a 410 Status, then the end.
    if (start.expired) return sendChunk(lines(start.events)) && finish();
    if (!start.events.empty() && !sendChunk(lines(start.events))) return false;

    int64_t cursor = start.cursor;
    auto lastBookmark = std::chrono::steady_clock::now();
    while (true) {
      std::string out;
      bool drop = false;
      {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, std::chrono::milliseconds(50), [&] {
          return stopping_ || self.drop || !self.injected.empty() || self.bookmarkRequested ||
                 store_.hasEventsAfter(cursor);
        });
        if (stopping_) return false;
        drop = self.drop;
        if (!drop) {
          out = lines(store_.eventsAfter(cursor, type, ns, *selector));
          for (const std::string& line : self.injected) out += line + "\n";
          self.injected.clear();
          const auto now = std::chrono::steady_clock::now();
          const bool periodic = options_.bookmarkInterval.count() > 0 &&
                                now - lastBookmark >= options_.bookmarkInterval;
          if (bookmarks && (self.bookmarkRequested || periodic)) {
            cursor = std::max(cursor, store_.version());
            out += json{{"type", "BOOKMARK"},
                        {"object",
                         {{"kind", type.kind},
                          {"apiVersion", type.apiVersion},
                          {"metadata", {{"resourceVersion", std::to_string(cursor)}}}}}}
                       .dump() +
                   "\n";
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

  ObjectStore store_;

  RequestMatcher delays_;
  std::chrono::milliseconds delay_{0};
  RequestMatcher failures_;
  int failureStatus_ = 500;

  std::vector<ReceivedRequest> requests_;
  size_t requestsCleared_ = 0;  // how many were dropped by clearRequests()
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
nlohmann::json FakeKubeServer::createObject(const std::string& plural, nlohmann::json object) {
  return impl_->createObject(plural, std::move(object));
}
nlohmann::json FakeKubeServer::updateObject(const std::string& plural, nlohmann::json object) {
  return impl_->updateObject(plural, std::move(object));
}
nlohmann::json FakeKubeServer::modifyObject(const std::string& plural, const std::string& ns,
                                            const std::string& name,
                                            const std::function<void(nlohmann::json&)>& change) {
  return impl_->modifyObject(plural, ns, name, change);
}
void FakeKubeServer::deleteObject(const std::string& plural, const std::string& ns,
                                  const std::string& name) {
  impl_->deleteObject(plural, ns, name);
}
std::optional<nlohmann::json> FakeKubeServer::object(const std::string& plural,
                                                     const std::string& ns,
                                                     const std::string& name) const {
  return impl_->object(plural, ns, name);
}
std::vector<nlohmann::json> FakeKubeServer::objects(const std::string& plural) const {
  return impl_->objects(plural);
}
int64_t FakeKubeServer::resourceVersion() const {
  return impl_->resourceVersion();
}

nlohmann::json FakeKubeServer::createPod(nlohmann::json pod) {
  return createObject("pods", std::move(pod));
}
nlohmann::json FakeKubeServer::updatePod(nlohmann::json pod) {
  return updateObject("pods", std::move(pod));
}
nlohmann::json FakeKubeServer::modifyPod(const std::string& ns, const std::string& name,
                                         const std::function<void(nlohmann::json&)>& change) {
  return modifyObject("pods", ns, name, change);
}
void FakeKubeServer::deletePod(const std::string& ns, const std::string& name) {
  deleteObject("pods", ns, name);
}
std::optional<nlohmann::json> FakeKubeServer::pod(const std::string& ns,
                                                  const std::string& name) const {
  return object("pods", ns, name);
}
std::vector<nlohmann::json> FakeKubeServer::pods() const {
  return objects("pods");
}
std::optional<nlohmann::json> FakeKubeServer::lease(const std::string& ns,
                                                    const std::string& name) const {
  return object("leases", ns, name);
}
nlohmann::json FakeKubeServer::putLease(nlohmann::json lease) {
  const std::string ns = lease["metadata"].value("namespace", "default");
  const std::string name = lease["metadata"].value("name", "");
  return object("leases", ns, name) ? updateObject("leases", std::move(lease))
                                    : createObject("leases", std::move(lease));
}
void FakeKubeServer::dropWatchStreams() {
  impl_->dropWatchStreams();
}
void FakeKubeServer::expireHistory() {
  impl_->expireHistory();
}
void FakeKubeServer::failNextRequests(int count, int status, const std::string& pathContains,
                                      const std::string& method) {
  impl_->failNextRequests(count, status, pathContains, method);
}
void FakeKubeServer::delayNextRequests(int count, std::chrono::milliseconds delay,
                                       const std::string& pathContains, const std::string& method) {
  impl_->delayNextRequests(count, delay, pathContains, method);
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
std::vector<ReceivedRequest> FakeKubeServer::requests() const {
  return impl_->requests();
}
void FakeKubeServer::clearRequests() {
  impl_->clearRequests();
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

namespace {
std::string taggedPodTemplate(const std::string& name, const std::string& step) {
  return R"({"name":")" + name +
         R"(","container":{"image":"python:3.11","command":["python"],"args":[")" + step +
         R"("]}})";
}
}  // namespace

std::string taggedPodKey(const std::string& namespaceName, const std::string& step,
                         core::KeyBinding binding) {
  // The template's name is not part of the key: any name gives the same key.
  return core::computeExecutionKey(taggedPodTemplate("any", step), binding, namespaceName)
      .value()
      .hex();
}

nlohmann::json makeTaggedPod(const std::string& namespaceName, const std::string& name,
                             const std::string& step, core::KeyBinding binding) {
  const std::string argoTemplate = taggedPodTemplate(name, step);
  const std::string key = taggedPodKey(namespaceName, step, binding);
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
  stampAsAdmitted(pod);
  return pod;
}

void stampAsAdmitted(nlohmann::json& pod, int64_t recordedStaleness) {
  json& metadata = pod["metadata"];
  metadata["annotations"]["kcache.kubeflow.org/admission-stamp"] = testing::testStampOf(
      metadata.value("namespace", ""), metadata.value("name", ""),
      metadata["annotations"].value("pipelines.kubeflow.org/execution_cache_key", ""),
      recordedStaleness);
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
