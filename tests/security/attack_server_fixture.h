#pragma once
// The real cache-server (webhook and watcher) against the fake Kubernetes API server and a real
// PostgreSQL, as the attack suites run it: started with extra flags, ready (store answered, the
// watcher holds the Lease), with helpers to post reviews, read /metrics and the process's memory.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/cmd/cache_server_process.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache::security_testing {

namespace fs = std::filesystem;
using nlohmann::json;

class AttackedServer {
 public:
  // `name` keeps the database and the directory apart per test.
  AttackedServer(const std::string& name, const std::vector<std::string>& extraArguments,
                 cmd_testing::EnvironmentChanges environment = {})
      : directory_(fs::temp_directory_path() /
                   ("kcache-attack-" + std::to_string(::getpid()) + "-" + name)) {
    fs::create_directories(directory_);
    auto& postgres = test_support::PostgresServer::shared();
    if (!postgres.running()) postgres.start();
    const std::string dsn = postgres.createFreshDatabase("attack_" + name);
    cmd_testing::writeWebhookCertificate(directory_);
    cmd_testing::writeKubeconfig(directory_ / "kubeconfig", fake_);
    webhookPort_ = static_cast<uint16_t>(test_support::findFreePort());
    httpPort_ = static_cast<uint16_t>(test_support::findFreePort());
    std::vector<std::string> arguments{"--db-host",        "127.0.0.1",
                                       "--db-port",        std::to_string(postgres.port()),
                                       "--db-user",        "postgres",
                                       "--db-name",        dsn.substr(dsn.rfind("dbname=") + 7),
                                       "--tls-dir",        directory_.string(),
                                       "--listen-address", "127.0.0.1",
                                       "--listen-port",    std::to_string(webhookPort_),
                                       "--http-port",      std::to_string(httpPort_),
                                       "--kubeconfig",     (directory_ / "kubeconfig").string()};
    arguments.insert(arguments.end(), extraArguments.begin(), extraArguments.end());
    process_ = std::make_unique<cmd_testing::CacheServerProcess>(
        arguments, "kcache-0", directory_ / "server.log", std::move(environment));
  }
  ~AttackedServer() {
    process_.reset();
    fs::remove_all(directory_);
  }

  // Ready: /readyz answers 200 and the watcher leads.
  ::testing::AssertionResult waitUntilReady() {
    const bool ready = kube::testing::waitFor(
        [&] {
          try {
            return webhook::testing::httpGet(httpPort_, "/readyz").status == 200;
          } catch (const std::exception&) {
            return false;
          }
        },
        std::chrono::seconds(60));
    if (!ready) return ::testing::AssertionFailure() << "not ready:\n" << log();
    if (!kube::testing::waitFor([&] { return fake_.lease("kcache", "kcache-watcher").has_value(); },
                                std::chrono::seconds(60))) {
      return ::testing::AssertionFailure() << "the watcher never led:\n" << log();
    }
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<webhook::testing::HttpsClient> client() const {
    return std::make_unique<webhook::testing::HttpsClient>(
        webhookPort_, std::vector<fs::path>{directory_ / "cert.pem"});
  }

  // The value of one sample of /metrics ("name{labels}"), -1 when absent.
  double metric(const std::string& sample) const {
    std::istringstream lines(webhook::testing::httpGet(httpPort_, "/metrics").body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
  }

  // VmRSS of the cache-server process, in bytes.
  std::size_t residentBytes() const {
    std::ifstream status("/proc/" + std::to_string(process_->pid()) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
    }
    return 0;
  }

  std::string commandLine() const {
    std::ifstream in("/proc/" + std::to_string(process_->pid()) + "/cmdline");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string log() const { return cmd_testing::readLog(directory_ / "server.log"); }
  fakekube::FakeKubeServer& kube() { return fake_; }
  uint16_t webhookPort() const { return webhookPort_; }
  cmd_testing::CacheServerProcess& process() { return *process_; }

 private:
  fs::path directory_;
  fakekube::FakeKubeServer fake_;
  uint16_t webhookPort_ = 0;
  uint16_t httpPort_ = 0;
  std::unique_ptr<cmd_testing::CacheServerProcess> process_;
};

// An AdmissionReview of a pod CREATE, as kube-apiserver sends it.
inline json reviewOf(const json& pod) {
  return webhook::testing::podCreateReview(pod);
}

inline json podFixture(const std::string& name) {
  std::ifstream in(fs::path(KCACHE_TEST_DATA_DIR) / "pods" / (name + ".json"));
  return json::parse(in);
}

}  // namespace kcache::security_testing
