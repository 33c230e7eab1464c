// Two cache-server processes against the fake Kubernetes API server and a real PostgreSQL:
// exactly one leads and records; SIGKILL the leader (no lease release) and the other takes over
// within 20 s and records what completed meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "store/cache_store.h"
#include "tests/cmd/cache_server_process.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/support/postgres_server.h"
#include "tests/watcher/watcher_test_support.h"
#include "webhook/admission_review.h"

namespace kcache {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using cmd_testing::CacheServerProcess;

class CacheServerTakeoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = fs::temp_directory_path() / ("kcache-takeover-" + std::to_string(::getpid()));
    fs::create_directories(directory_);
    auto& postgres = test_support::PostgresServer::shared();
    dsn_ = postgres.createFreshDatabase("takeover");
    const std::string database = dsn_.substr(dsn_.rfind("dbname=") + 7);
    cmd_testing::writeWebhookCertificate(directory_);
    cmd_testing::writeKubeconfig(directory_ / "kubeconfig", fake_);
    arguments_ = {
        "--db-host",           "127.0.0.1",
        "--db-port",           std::to_string(postgres.port()),
        "--db-user",           "postgres",
        "--db-name",           database,
        "--tls-dir",           directory_.string(),
        "--listen-address",    "127.0.0.1",
        "--kubeconfig",        (directory_ / "kubeconfig").string(),
        "--stamp-secret-file", cmd_testing::writeTestStampSecret(directory_ / "stamp-secret")};
  }
  void TearDown() override { fs::remove_all(directory_); }

  std::unique_ptr<CacheServerProcess> startServer(const std::string& name) {
    auto arguments = arguments_;
    for (const auto& flag :
         {std::string("--listen-port"), std::to_string(test_support::findFreePort()),
          std::string("--http-port"), std::to_string(test_support::findFreePort())}) {
      arguments.push_back(flag);
    }
    return std::make_unique<CacheServerProcess>(arguments, name, directory_ / (name + ".log"));
  }

  void createCompletedPod(const std::string& name) {
    // Tagged as the webhook tags it, with the real key of its template (the watcher checks it).
    json pod = fakekube::makeTaggedPod("team-a", name, name);
    pod["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true";
    pod["metadata"]["annotations"]["workflows.argoproj.io/outputs"] =
        R"({"parameters":[{"name":"p","value":"1"}]})";
    pod["status"] = {
        {"phase", "Succeeded"},
        {"containerStatuses",
         json::parse(R"([{"name": "main", "state": {"terminated": {"exitCode": 0}}}])")}};
    fake_.createPod(pod);
  }

  std::string cacheId(const std::string& name) {
    const auto pod = fake_.pod("team-a", name);
    if (!pod) return "";
    return (*pod)["metadata"]["labels"].value("pipelines.kubeflow.org/cache_id", "");
  }

  std::string leaseHolder() {
    const auto lease = fake_.lease("kcache", "kcache-watcher");
    if (!lease) return "";
    return (*lease)["spec"].value("holderIdentity", "");
  }

  std::string logOf(const std::string& name) {
    return cmd_testing::readLog(directory_ / (name + ".log"));
  }

  fakekube::FakeKubeServer fake_;
  fs::path directory_;
  std::string dsn_;
  std::vector<std::string> arguments_;
};

TEST_F(CacheServerTakeoverTest, OneLeadsAndTheOtherTakesOverWhenItIsKilled) {
  auto replicaA = startServer("replica-a");
  auto replicaB = startServer("replica-b");
  ASSERT_TRUE(
      watcher::testing::waitFor([&] { return !leaseHolder().empty(); }, std::chrono::seconds(60)))
      << logOf("replica-a") << logOf("replica-b");
  const std::string leader = leaseHolder();
  ASSERT_TRUE(leader == "replica-a" || leader == "replica-b") << leader;

  createCompletedPod("step-1");
  ASSERT_TRUE(watcher::testing::waitFor([&] { return !cacheId("step-1").empty(); },
                                        std::chrono::seconds(60)))
      << logOf("replica-a") << logOf("replica-b");
  // Exactly one replica recorded it: one entry, one label patch.
  size_t patchesForStep1 = 0;
  for (const auto& patch : fake_.patches())
    patchesForStep1 += patch.name == "step-1" && patch.status == 200;
  EXPECT_EQ(patchesForStep1, 1u);
  EXPECT_EQ(leaseHolder(), leader);

  // Kill the leader outright: it cannot release the lease, so the other must wait it out.
  auto& leaderProcess = leader == "replica-a" ? replicaA : replicaB;
  const std::string standby = leader == "replica-a" ? "replica-b" : "replica-a";
  leaderProcess->stop(SIGKILL);
  const auto killedAt = Clock::now();
  createCompletedPod("step-2");  // completes while nobody leads

  ASSERT_TRUE(
      watcher::testing::waitFor([&] { return leaseHolder() == standby; }, std::chrono::seconds(20)))
      << "no takeover within 20 s; holder " << leaseHolder() << "\n"
      << logOf(standby);
  const auto takeover =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killedAt);
  std::cout << "takeover after " << takeover.count() << " ms\n";
  ASSERT_TRUE(watcher::testing::waitFor([&] { return !cacheId("step-2").empty(); },
                                        std::chrono::seconds(30)))
      << logOf(standby);

  store::StoreOptions options;
  options.dsn = dsn_;
  store::CacheStore store(options);
  EXPECT_EQ(store.countEntries({}), 2);
  const auto entries = store.listEntries({}, 0, 10);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(std::to_string(entries[0].id), cacheId("step-1"));
  EXPECT_EQ(std::to_string(entries[1].id), cacheId("step-2"));
  EXPECT_EQ(entries[1].podName, "step-2");
  EXPECT_EQ(entries[1].namespaceName, "team-a");
}

}  // namespace
}  // namespace kcache
