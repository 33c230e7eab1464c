#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "kube/kube_client.h"
#include "tests/support/test_stamp_keys.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/leader_elector.h"
#include "watcher/watcher_service.h"

namespace kcache::watcher {
namespace {

using fakekube::FakeKubeServer;
using fakekube::makeTaggedPod;
using fakekube::markSucceeded;
using std::chrono::milliseconds;
using testing::configFor;
using testing::InMemoryCacheRecorder;
using testing::keyFor;
using testing::waitFor;

const std::string kLeaseNamespace = "kcache-system";
const std::string kLeaseName = "kcache-watcher";

WatcherConfig electedConfig(const std::string& identity, bool releaseOnStop = true) {
  WatcherConfig config;
  config.informer.namespaceName = "ns";
  config.informer.backoff = BackoffConfig{milliseconds(20), milliseconds(300)};
  config.recorder.admissionStamps = kcache::testing::testStampKeys();
  config.recorder.retryBackoff = BackoffConfig{milliseconds(20), milliseconds(300)};
  config.gcInterval = milliseconds(0);
  config.leaderElection = true;
  config.election.leaseNamespace = kLeaseNamespace;
  config.election.leaseName = kLeaseName;
  config.election.identity = identity;
  config.election.leaseDuration = milliseconds(2000);
  config.election.renewDeadline = milliseconds(1000);
  config.election.retryPeriod = milliseconds(100);
  config.election.releaseOnStop = releaseOnStop;
  return config;
}

std::string holder(const FakeKubeServer& server) {
  const auto lease = server.lease(kLeaseNamespace, kLeaseName);
  return lease ? lease->at("spec").value("holderIdentity", "") : "";
}

std::string cacheIdOf(const FakeKubeServer& server, const std::string& name) {
  const auto pod = server.pod("ns", name);
  return pod ? pod->at("metadata").at("labels").value("pipelines.kubeflow.org/cache_id", "") : "";
}

void createCompleted(FakeKubeServer& server, const std::string& name, int n) {
  auto pod = makeTaggedPod("ns", name, keyFor(n));
  markSucceeded(pod, "{}");
  server.createPod(pod);
}

class LeaderElectionTest : public ::testing::Test {
 protected:
  std::unique_ptr<WatcherService> makeService(const WatcherConfig& config,
                                              core::MetricsRegistry& registry) {
    return std::make_unique<WatcherService>(kube::makeKubeClient(configFor(server_)), config,
                                            store_, std::function<void()>{}, registry);
  }

  FakeKubeServer server_;
  InMemoryCacheRecorder store_;
  core::MetricsRegistry registryA_;
  core::MetricsRegistry registryB_;
};

TEST_F(LeaderElectionTest, ExactlyOneOfTwoLeadsAndTheOtherTakesOverWhenItStopsRenewing) {
  auto a = makeService(electedConfig("replica-a", /*releaseOnStop=*/false), registryA_);
  auto b = makeService(electedConfig("replica-b", /*releaseOnStop=*/false), registryB_);
  a->start();
  b->start();
  ASSERT_TRUE(waitFor([&] { return a->isLeader() || b->isLeader(); }));
  // Sample for a while: never two leaders, and the lease names the one that leads.
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(a->isLeader() && b->isLeader());
    std::this_thread::sleep_for(milliseconds(50));
  }
  WatcherService* leader = a->isLeader() ? a.get() : b.get();
  WatcherService* follower = leader == a.get() ? b.get() : a.get();
  const std::string leaderName = leader == a.get() ? "replica-a" : "replica-b";
  const std::string followerName = leader == a.get() ? "replica-b" : "replica-a";
  EXPECT_EQ(holder(server_), leaderName);
  EXPECT_FALSE(follower->isLeader());

  createCompleted(server_, "first", 1);
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "first").empty(); }));
  // Only the leader watches (pods and task results; the second stream may still be listing).
  EXPECT_TRUE(waitFor([&] { return server_.openWatchStreams() == 2; }))
      << server_.openWatchStreams() << " watch streams open";

  // The leader stops renewing without giving the lease up, as a killed process would.
  leader->stop();
  createCompleted(server_, "meanwhile", 2);
  ASSERT_TRUE(waitFor([&] { return follower->isLeader(); }, std::chrono::seconds(20)));
  EXPECT_EQ(holder(server_), followerName);
  ASSERT_TRUE(waitFor([&] { return !cacheIdOf(server_, "meanwhile").empty(); }));
  EXPECT_EQ(store_.calls(), 2);
  EXPECT_EQ(server_.lease(kLeaseNamespace, kLeaseName)->at("spec").value("leaseTransitions", 0), 1);
}

TEST_F(LeaderElectionTest, ALeaderThatStopsCleanlyReleasesTheLease) {
  auto a = makeService(electedConfig("replica-a"), registryA_);
  a->start();
  ASSERT_TRUE(waitFor([&] { return a->isLeader(); }));
  a->stop();
  EXPECT_EQ(holder(server_), "");
  EXPECT_EQ(registryA_.gauge("kcache_watcher_leader", "").value(), 0);
  auto b = makeService(electedConfig("replica-b"), registryB_);
  b->start();
  ASSERT_TRUE(waitFor([&] { return b->isLeader(); }));
}

TEST_F(LeaderElectionTest, ALeaderThatLosesTheLeaseStopsWatchingAtOnce) {
  auto a = makeService(electedConfig("replica-a"), registryA_);
  a->start();
  ASSERT_TRUE(waitFor([&] { return a->isLeader() && server_.openWatchStreams() == 2; }));
  EXPECT_EQ(registryA_.gauge("kcache_watcher_leader", "").value(), 1);

  // Another replica takes the lease (as if this one had been partitioned away for a while).
  auto lease = server_.lease(kLeaseNamespace, kLeaseName).value();
  lease["spec"]["holderIdentity"] = "intruder";
  lease["spec"]["renewTime"] = microTime(std::chrono::system_clock::now());
  lease["spec"]["leaseDurationSeconds"] = 3600;
  server_.putLease(lease);

  ASSERT_TRUE(waitFor([&] { return !a->isLeader() && server_.openWatchStreams() == 0; }));
  EXPECT_EQ(registryA_.gauge("kcache_watcher_leader", "").value(), 0);
  createCompleted(server_, "unwatched", 1);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(cacheIdOf(server_, "unwatched"), "");  // nobody records while the intruder holds it
  EXPECT_EQ(holder(server_), "intruder");
  a->stop();
}

TEST_F(LeaderElectionTest, ALeaderThatCannotRenewStepsDownAfterTheRenewDeadline) {
  auto a = makeService(electedConfig("replica-a"), registryA_);
  a->start();
  ASSERT_TRUE(waitFor([&] { return a->isLeader() && server_.openWatchStreams() == 2; }));
  server_.failNextRequests(1000000, 500, "/leases");
  ASSERT_TRUE(waitFor([&] { return !a->isLeader() && server_.openWatchStreams() == 0; }));
  server_.failNextRequests(0);
  // Once the API server answers again, it campaigns and (the lease being its own) leads again.
  ASSERT_TRUE(waitFor([&] { return a->isLeader(); }));
  a->stop();
}

// A clock that only moves when the elector sleeps: lease expiry is judged without real waiting.
struct ManualClock {
  std::atomic<int64_t> nowMs{3600 * 1000};  // not the epoch: the elector reads that as "never"
  ElectionClock clock() {
    ElectionClock clock;
    clock.now = [this] {
      return std::chrono::steady_clock::time_point(milliseconds(nowMs.load()));
    };
    clock.sleep = [this](milliseconds duration, std::stop_token stop) {
      nowMs += duration.count();
      std::this_thread::sleep_for(milliseconds(1));  // lets the test thread run
      return !stop.stop_requested();
    };
    return clock;
  }
};

TEST_F(LeaderElectionTest, ALeaseIsTakenOverOnlyOnceItsDurationHasPassedOnTheLocalClock) {
  // Another replica holds the lease for 60 s and never renews it; its renewTime is from the
  // distant past, which must not matter: expiry is judged from when this replica first saw it.
  nlohmann::json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                          {"kind", "Lease"},
                          {"metadata", {{"name", kLeaseName}, {"namespace", kLeaseNamespace}}},
                          {"spec",
                           {{"holderIdentity", "replica-gone"},
                            {"leaseDurationSeconds", 60},
                            {"renewTime", "2001-01-01T00:00:00.000000Z"},
                            {"leaseTransitions", 4}}}};
  server_.putLease(lease);
  ManualClock manual;
  const int64_t startMs = manual.nowMs.load();
  LeaderElectionConfig config = electedConfig("replica-b").election;
  config.leaseDuration = milliseconds(15000);
  config.renewDeadline = milliseconds(10000);
  config.retryPeriod = milliseconds(2000);
  config.clock = manual.clock();
  auto api = kube::makeKubeClient(configFor(server_));
  WatcherMetrics metrics(registryB_);
  LeaderElector elector(*api, config, metrics);
  std::atomic<int64_t> ledAtMs{-1};
  std::jthread campaign([&](std::stop_token stop) {
    elector.run(stop, [&](std::stop_token leading) {
      ledAtMs = manual.nowMs.load();
      while (!leading.stop_requested()) std::this_thread::sleep_for(milliseconds(5));
    });
  });
  ASSERT_TRUE(waitFor([&] { return ledAtMs.load() >= 0; }));
  // The lease's own 60 s count, not this replica's 15 s, and no more than one retry late.
  EXPECT_GE(ledAtMs.load() - startMs, 60000);
  EXPECT_LE(ledAtMs.load() - startMs, 60000 + 2000);
  EXPECT_EQ(holder(server_), "replica-b");
  EXPECT_EQ(server_.lease(kLeaseNamespace, kLeaseName)->at("spec").value("leaseTransitions", 0), 5);
  campaign.request_stop();
  campaign.join();
  EXPECT_EQ(holder(server_), "");  // released on a clean stop
  // Became leader once; stepping down is not a second transition.
  EXPECT_EQ(registryB_.counter("kcache_watcher_leader_transitions_total", "").value(), 1);
  EXPECT_EQ(registryB_.gauge("kcache_watcher_leader", "").value(), 0);
}

TEST(LeaderElectionConfig, TimingsFollowClientGosRules) {
  LeaderElectionConfig config;
  EXPECT_NO_THROW(validate(config));  // the defaults: 15 s, 10 s, 2 s

  auto messageOf = [](const LeaderElectionConfig& bad) -> std::string {
    try {
      validate(bad);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  LeaderElectionConfig shortLease = config;
  shortLease.leaseDuration = milliseconds(10000);
  EXPECT_EQ(messageOf(shortLease),
            "leader election on lease kcache-watcher: the lease duration (10000 ms) must be longer "
            "than the renew deadline (10000 ms)");
  LeaderElectionConfig tightDeadline = config;
  tightDeadline.renewDeadline = milliseconds(2400);
  EXPECT_EQ(messageOf(tightDeadline),
            "leader election on lease kcache-watcher: the renew deadline (2400 ms) must be longer "
            "than 1.2 x the retry period (2000 ms)");
  tightDeadline.renewDeadline = milliseconds(2401);
  EXPECT_EQ(messageOf(tightDeadline), "accepted");
  LeaderElectionConfig noRetry = config;
  noRetry.retryPeriod = milliseconds(0);
  EXPECT_EQ(messageOf(noRetry),
            "leader election on lease kcache-watcher: the retry period (0 ms) must be positive");
  LeaderElectionConfig noName = config;
  noName.leaseName.clear();
  EXPECT_NE(messageOf(noName).find("the lease name is empty"), std::string::npos);

  // The elector refuses them as well, before it talks to any API server.
  FakeKubeServer server;
  auto api = kube::makeKubeClient(configFor(server));
  core::MetricsRegistry registry;
  WatcherMetrics metrics(registry);
  EXPECT_THROW(LeaderElector(*api, shortLease, metrics), std::invalid_argument);
}

TEST(LeaderElector, MicroTimeFormat) {
  const auto time =
      std::chrono::system_clock::time_point(std::chrono::microseconds(1772359200123456));
  EXPECT_EQ(microTime(time), "2026-03-01T10:00:00.123456Z");
}

}  // namespace
}  // namespace kcache::watcher
