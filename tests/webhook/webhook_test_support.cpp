#include "tests/webhook/webhook_test_support.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/staleness.h"

#ifndef KCACHE_ADMISSION_FIXTURES_DIR
#error "KCACHE_ADMISSION_FIXTURES_DIR must point at tests/data/admission"
#endif

namespace kcache::webhook::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

std::vector<std::string> fixtureNames() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(KCACHE_ADMISSION_FIXTURES_DIR)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string readFixture(const std::string& name) {
  const auto path = std::filesystem::path(KCACHE_ADMISSION_FIXTURES_DIR) / name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read fixture " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::json fixtureJson(const std::string& name) {
  return nlohmann::json::parse(readFixture(name));
}

std::string keyInScope(std::string_view argoTemplate, store::CacheScope scope,
                       const std::string& namespaceName) {
  return core::computeExecutionKey(argoTemplate, store::keyBindingOf(scope), namespaceName)
      .value()
      .hex();
}

int64_t MemoryLookup::add(store::CacheEntry entry) {
  std::lock_guard lock(mutex_);
  entry.id = static_cast<int64_t>(entries_.size()) + 1;
  entries_.push_back(entry);
  return entry.id;
}

std::optional<store::CacheEntry> MemoryLookup::lookup(store::CacheScope scope,
                                                      std::string_view namespaceName,
                                                      std::string_view key,
                                                      int64_t podStalenessSeconds,
                                                      int64_t nowInSec) {
  ++lookups_;
  std::lock_guard lock(mutex_);
  last_ = LastQuery{scope, std::string(namespaceName), std::string(key), podStalenessSeconds};
  std::optional<store::CacheEntry> best;
  for (const auto& entry : entries_) {
    if (entry.key != key) continue;
    if (scope == store::CacheScope::kNamespace && entry.namespaceName != namespaceName) continue;
    if (!core::StalenessPolicy::isFresh(nowInSec - entry.startedAtInSec, podStalenessSeconds,
                                        entry.maxCacheStaleness)) {
      continue;
    }
    if (!best || entry.startedAtInSec >= best->startedAtInSec) best = entry;
  }
  return best;
}

std::optional<store::CacheEntry> MemoryLookup::lookupLegacy(std::string_view legacyKey,
                                                            int64_t podStalenessSeconds,
                                                            int64_t nowInSec) {
  ++legacyLookups_;
  std::lock_guard lock(mutex_);
  std::optional<store::CacheEntry> best;
  for (const auto& entry : entries_) {
    if (entry.key != legacyKey || !entry.namespaceName.empty()) continue;
    if (!core::StalenessPolicy::isFresh(nowInSec - entry.startedAtInSec, podStalenessSeconds,
                                        entry.maxCacheStaleness)) {
      continue;
    }
    if (!best || entry.startedAtInSec >= best->startedAtInSec) best = entry;
  }
  return best;
}

void MemoryLookup::noteHit(int64_t entryId, int64_t) {
  std::lock_guard lock(mutex_);
  hits_.push_back(entryId);
}

std::vector<int64_t> MemoryLookup::notedHits() const {
  std::lock_guard lock(mutex_);
  return hits_;
}

std::optional<MemoryLookup::LastQuery> MemoryLookup::lastQuery() const {
  std::lock_guard lock(mutex_);
  return last_;
}

void FaultyLookup::failWith(std::string message) {
  std::lock_guard lock(mutex_);
  failure_ = std::move(message);
}

void FaultyLookup::heal() {
  std::lock_guard lock(mutex_);
  failure_.reset();
  stall_.store(0);
}

void FaultyLookup::injectFaults() {
  ++calls_;
  if (const auto stall = stall_.load(); stall > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(stall));
  }
  std::lock_guard lock(mutex_);
  if (failure_) throw store::StoreError(*failure_);
}

std::optional<store::CacheEntry> FaultyLookup::lookup(store::CacheScope scope,
                                                      std::string_view namespaceName,
                                                      std::string_view key,
                                                      int64_t podStalenessSeconds,
                                                      int64_t nowInSec) {
  injectFaults();
  return inner_.lookup(scope, namespaceName, key, podStalenessSeconds, nowInSec);
}

std::optional<store::CacheEntry> FaultyLookup::lookupLegacy(std::string_view legacyKey,
                                                            int64_t podStalenessSeconds,
                                                            int64_t nowInSec) {
  injectFaults();
  return inner_.lookupLegacy(legacyKey, podStalenessSeconds, nowInSec);
}

TempDir::TempDir() {
  std::random_device random;
  const auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = base / ("kcache-webhook-test-" + std::to_string(::getpid()) + "-" +
                             std::to_string(random()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory in " + base.string());
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

void runOpenssl(const std::string& arguments) {
  const std::string command = "openssl " + arguments + " 2>/dev/null";
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("openssl could not create a test certificate: " + command);
  }
}

std::string shellQuoted(const std::filesystem::path& path) {
  return "'" + path.string() + "'";
}

std::string keyOptions(KeyType keyType) {
  return keyType == KeyType::kRsa ? "-newkey rsa:2048"
                                  : "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
}

// Renames the .new files into place, key first, so a watcher never sees a half-written pair.
void publish(const std::filesystem::path& certFile, const std::filesystem::path& keyFile) {
  std::filesystem::rename(keyFile.string() + ".new", keyFile);
  std::filesystem::rename(certFile.string() + ".new", certFile);
}

}  // namespace

void writeSelfSignedCertificate(const std::filesystem::path& certFile,
                                const std::filesystem::path& keyFile, const std::string& commonName,
                                KeyType keyType) {
  runOpenssl("req -x509 " + keyOptions(keyType) + " -nodes -days 2 -subj /CN=" + commonName +
             " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
             shellQuoted(keyFile.string() + ".new") + " -out " +
             shellQuoted(certFile.string() + ".new"));
  publish(certFile, keyFile);
}

void writeCertificateAuthority(const std::filesystem::path& certFile,
                               const std::filesystem::path& keyFile,
                               const std::string& commonName) {
  runOpenssl(
      "req -x509 " + keyOptions(KeyType::kEcdsa) + " -nodes -days 2 -subj /CN=" + commonName +
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
      "-keyout " +
      shellQuoted(keyFile.string() + ".new") + " -out " + shellQuoted(certFile.string() + ".new"));
  publish(certFile, keyFile);
}

void writeSignedCertificate(const std::filesystem::path& certFile,
                            const std::filesystem::path& keyFile, const std::string& commonName,
                            const std::filesystem::path& caCertFile,
                            const std::filesystem::path& caKeyFile,
                            const std::string& extendedKeyUsage) {
  const auto request = certFile.string() + ".csr";
  const auto extensions = certFile.string() + ".ext";
  {
    std::ofstream out(extensions);
    out << "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        << "extendedKeyUsage=" << extendedKeyUsage << "\n";
  }
  runOpenssl("req -new " + keyOptions(KeyType::kEcdsa) + " -nodes -subj /CN=" + commonName +
             " -keyout " + shellQuoted(keyFile.string() + ".new") + " -out " +
             shellQuoted(request));
  runOpenssl("x509 -req -in " + shellQuoted(request) + " -CA " + shellQuoted(caCertFile) +
             " -CAkey " + shellQuoted(caKeyFile) + " -CAcreateserial -days 2 -extfile " +
             shellQuoted(extensions) + " -out " + shellQuoted(certFile.string() + ".new"));
  std::filesystem::remove(request);
  std::filesystem::remove(extensions);
  publish(certFile, keyFile);
}

std::string captureStderr(const std::function<void()>& body) {
  TempDir dir;
  const auto path = dir.path() / "stderr.log";
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  FILE* file = std::fopen(path.c_str(), "w");
  ::dup2(::fileno(file), STDERR_FILENO);
  body();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::fclose(file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

struct HttpsClient::Impl {
  net::io_context io;
  ssl::context context{ssl::context::tls_client};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
};

HttpsClient::HttpsClient(uint16_t port,
                         const std::vector<std::filesystem::path>& trustedCertificates,
                         const std::optional<ClientCertificate>& clientCertificate)
    : impl_(std::make_unique<Impl>()) {
  impl_->context.set_verify_mode(ssl::verify_peer);
  for (const auto& file : trustedCertificates) impl_->context.load_verify_file(file.string());
  if (clientCertificate) {
    impl_->context.use_certificate_chain_file(clientCertificate->certFile.string());
    impl_->context.use_private_key_file(clientCertificate->keyFile.string(), ssl::context::pem);
  }
  impl_->stream.emplace(impl_->io, impl_->context);
  auto& stream = *impl_->stream;
  SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
  stream.set_verify_callback(ssl::host_name_verification("localhost"));
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(stream).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  stream.handshake(ssl::stream_base::client);
}

HttpsClient::~HttpsClient() = default;

HttpResponse HttpsClient::request(const std::string& method, const std::string& target,
                                  const std::string& body, const std::string& contentType) {
  auto& stream = *impl_->stream;
  http::request<http::string_body> request;
  request.method_string(method);
  request.target(target);
  request.version(11);
  request.set(http::field::host, "localhost");
  if (!contentType.empty()) request.set(http::field::content_type, contentType);
  request.keep_alive(true);
  request.body() = body;
  request.prepare_payload();
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  http::write(stream, request);
  return readResponse();
}

void HttpsClient::writeRaw(const std::string& bytes) {
  auto& stream = *impl_->stream;
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  net::write(stream, net::buffer(bytes));
}

HttpResponse HttpsClient::readResponse() {
  auto& stream = *impl_->stream;
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, impl_->buffer, parser);
  HttpResponse response;
  response.status = static_cast<int>(parser.get().result_int());
  response.body = parser.get().body();
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers[name] = std::string(field.value());
  }
  return response;
}

std::string HttpsClient::peerCommonName() const {
  X509* certificate = SSL_get1_peer_certificate(impl_->stream->native_handle());
  if (certificate == nullptr) return {};
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, name, sizeof(name));
  X509_free(certificate);
  return name;
}

bool HttpsClient::closedByPeer() {
  auto& stream = *impl_->stream;
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
  char byte = 0;
  beast::error_code error;
  stream.read_some(net::buffer(&byte, 1), error);
  return error == net::error::eof || error == ssl::error::stream_truncated;
}

HttpResponse httpGet(uint16_t port, const std::string& target) {
  net::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> request(http::verb::get, target, 11);
  request.set(http::field::host, "localhost");
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  HttpResponse result;
  result.status = static_cast<int>(response.result_int());
  result.body = response.body();
  return result;
}

std::string base64Decode(const std::string& text) {
  std::string out;
  uint32_t accumulator = 0;
  int bits = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') {
      value = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      value = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      value = c - '0' + 52;
    } else if (c == '+') {
      value = 62;
    } else if (c == '/') {
      value = 63;
    } else if (c == '=') {
      break;
    } else {
      throw std::invalid_argument("not base64");
    }
    accumulator = (accumulator << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((accumulator >> bits) & 0xff);
    }
  }
  return out;
}

AppliedAnswer applyAnswer(const nlohmann::json& pod, const std::string& answerBody) {
  AppliedAnswer applied;
  applied.review = nlohmann::json::parse(answerBody);
  const auto& response = applied.review.at("response");
  applied.allowed = response.at("allowed").get<bool>();
  applied.hasPatch = response.contains("patch");
  applied.patchedPod = pod;
  if (applied.hasPatch) {
    applied.patch = nlohmann::json::parse(base64Decode(response.at("patch").get<std::string>()));
    applied.patchedPod = pod.patch(applied.patch);
  }
  return applied;
}

nlohmann::json podCreateReview(const nlohmann::json& pod, const std::string& userName,
                               bool dryRun) {
  const nlohmann::json& metadata = pod.at("metadata");
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "review-" + metadata.at("name").get<std::string>()},
            {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
            {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
            {"namespace", metadata.at("namespace")},
            {"name", metadata.at("name")},
            {"operation", "CREATE"},
            {"userInfo", {{"username", userName}}},
            {"object", pod},
            {"dryRun", dryRun}}}};
}

}  // namespace kcache::webhook::testing
