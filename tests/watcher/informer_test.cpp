#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "kube/kube_client.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/informer.h"

namespace kcache::watcher {
namespace {

using fakekube::FakeKubeServer;
using fakekube::makeTaggedPod;
using testing::configFor;
using testing::keyFor;
using testing::numbered;
using testing::waitFor;

// Remembers every pod state the informer hands over.
class CollectingHandler : public InformerEventHandler {
 public:
  void onObject(const nlohmann::json& pod) override {
    std::lock_guard lock(mutex_);
    names_.insert(pod.at("metadata").value("name", ""));
  }
  void onDeleted(const nlohmann::json& pod) override {
    std::lock_guard lock(mutex_);
    deleted_.insert(pod.at("metadata").value("name", ""));
  }
  bool saw(const std::string& name) const {
    std::lock_guard lock(mutex_);
    return names_.count(name) > 0;
  }
  bool sawDeleted(const std::string& name) const {
    std::lock_guard lock(mutex_);
    return deleted_.count(name) > 0;
  }
  size_t distinctPods() const {
    std::lock_guard lock(mutex_);
    return names_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::set<std::string> names_;
  std::set<std::string> deleted_;
};

class InformerTest : public ::testing::Test {
 protected:
  void start(const std::string& ns = "ns") {
    InformerConfig config;
    config.namespaceName = ns;
    config.pageSize = 2;
    config.backoff = BackoffConfig{std::chrono::milliseconds(20), std::chrono::milliseconds(200)};
    informer_ = std::make_unique<Informer>(*api_, config, handler_, metrics_.pods);
    thread_ = std::jthread([this](std::stop_token stop) { informer_->run(stop); });
  }
  void TearDown() override {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  bool watching() {
    return waitFor([&] { return server_.openWatchStreams() >= 1; });
  }
  std::string lastWatchVersion() { return server_.watchRequests().back().resourceVersion; }

  FakeKubeServer server_;
  std::unique_ptr<kube::KubeApi> api_ = kube::makeKubeClient(configFor(server_));
  core::MetricsRegistry registry_;
  WatcherMetrics metrics_{registry_};
  CollectingHandler handler_;
  std::unique_ptr<Informer> informer_;
  std::jthread thread_;
};

TEST_F(InformerTest, ListsPageByPageThenWatchesFromTheListVersion) {
  for (int i = 0; i < 5; ++i) server_.createPod(makeTaggedPod("ns", numbered("p", i), keyFor(i)));
  const std::string listVersion = std::to_string(server_.resourceVersion());
  start();
  ASSERT_TRUE(watching());
  EXPECT_EQ(handler_.distinctPods(), 5u);
  EXPECT_EQ(server_.watchRequests().front().resourceVersion, listVersion);
  EXPECT_TRUE(server_.watchRequests().front().allowWatchBookmarks);
  server_.createPod(makeTaggedPod("ns", "new", keyFor(9)));
  server_.deletePod("ns", "p0");
  ASSERT_TRUE(waitFor([&] { return handler_.saw("new") && handler_.sawDeleted("p0"); }));
  EXPECT_EQ(metrics_.pods.lists.value(), 1);
  EXPECT_EQ(metrics_.pods.relists.value(), 0);
}

TEST_F(InformerTest, ResumesFromTheLastSeenVersionAfterADroppedStream) {
  start();
  ASSERT_TRUE(watching());
  server_.createPod(makeTaggedPod("ns", "a", keyFor(1)));
  ASSERT_TRUE(waitFor([&] { return handler_.saw("a"); }));
  const std::string seen = std::to_string(server_.resourceVersion());
  server_.dropWatchStreams();
  server_.createPod(makeTaggedPod("ns", "while-dropped", keyFor(2)));
  ASSERT_TRUE(waitFor([&] { return handler_.saw("while-dropped"); }));
  ASSERT_GE(server_.watchRequests().size(), 2u);
  EXPECT_EQ(server_.watchRequests()[1].resourceVersion, seen);
  EXPECT_EQ(server_.listRequests(), 1);  // no relist needed
  EXPECT_GE(metrics_.pods.watchRestarts.value(), 1);
}

TEST_F(InformerTest, RelistsWhenTheVersionExpired) {
  start();
  ASSERT_TRUE(watching());
  server_.createPod(makeTaggedPod("ns", "a", keyFor(1)));
  ASSERT_TRUE(waitFor([&] { return handler_.saw("a"); }));
  server_.dropWatchStreams();
  server_.createPod(makeTaggedPod("ns", "missed", keyFor(2)));
  server_.expireHistory();  // the resume version is now too old: 410 Gone, then a relist
  ASSERT_TRUE(waitFor([&] { return handler_.saw("missed"); }));
  EXPECT_EQ(server_.listRequests(), 2);
  EXPECT_EQ(metrics_.pods.relists.value(), 1);
  EXPECT_EQ(metrics_.pods.event(WatchEventType::kError).value(), 1);
  const std::string relistVersion = std::to_string(server_.resourceVersion());
  EXPECT_TRUE(waitFor([&] { return lastWatchVersion() == relistVersion; }));
}

TEST_F(InformerTest, RelistsAfterAnErrorEvent) {
  start();
  ASSERT_TRUE(watching());
  server_.sendErrorEvent(500, "InternalError", "etcd is sad");
  ASSERT_TRUE(
      waitFor([&] { return server_.listRequests() == 2 && server_.openWatchStreams() == 1; }));
  EXPECT_EQ(metrics_.pods.relists.value(), 1);
  server_.createPod(makeTaggedPod("ns", "after", keyFor(3)));
  ASSERT_TRUE(waitFor([&] { return handler_.saw("after"); }));
}

TEST_F(InformerTest, BookmarksAdvanceTheResumeVersion) {
  start();
  ASSERT_TRUE(watching());
  // Changes the informer does not see (another namespace) move the global version on.
  for (int i = 0; i < 3; ++i)
    server_.createPod(makeTaggedPod("other", numbered("o", i), keyFor(i)));
  const std::string current = std::to_string(server_.resourceVersion());
  EXPECT_NE(informer_->resumeVersion(), current);
  server_.sendBookmarks();
  ASSERT_TRUE(waitFor([&] { return informer_->resumeVersion() == current; }));
  server_.dropWatchStreams();
  ASSERT_TRUE(waitFor([&] { return server_.watchRequests().size() >= 2; }));
  EXPECT_EQ(server_.watchRequests()[1].resourceVersion, current);
  EXPECT_EQ(metrics_.pods.event(WatchEventType::kBookmark).value(), 1);
  EXPECT_FALSE(handler_.saw("o0"));
}

TEST_F(InformerTest, SkipsMalformedEventsAndKeepsGoing) {
  start();
  ASSERT_TRUE(watching());
  server_.sendRawWatchLine("this is not json");
  server_.sendRawWatchLine(R"({"type":"EXPLODED","object":{}})");
  server_.sendRawWatchLine(
      R"({"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns"}}})");
  server_.sendRawWatchLine(
      R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"odd","namespace":"ns","labels":"x"},"status":7}})");
  server_.createPod(makeTaggedPod("ns", "fine", keyFor(4)));
  ASSERT_TRUE(waitFor([&] { return handler_.saw("fine"); }));
  EXPECT_EQ(metrics_.pods.malformedEvents.value(), 3);
  EXPECT_FALSE(handler_.saw("cm"));
  EXPECT_TRUE(handler_.saw("odd"));  // a pod of odd shape is the handler's business
  EXPECT_EQ(server_.listRequests(), 1);
}

TEST_F(InformerTest, BacksOffWhileTheServerFails) {
  server_.failNextRequests(1000000, 503);
  start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  // With a 20 ms initial and 200 ms maximum backoff, one second allows a handful of attempts; a
  // busy loop would make hundreds.
  EXPECT_LT(server_.totalRequests(), 30);
  EXPECT_GE(server_.totalRequests(), 2);
  server_.failNextRequests(0);
  ASSERT_TRUE(watching());
}

// A list whose continue token expires between pages (history compacted meanwhile) falls back to
// one unpaged list instead of failing.
class ExpiringContinueApi : public testing::DelegatingKubeApi {
 public:
  ExpiringContinueApi(kube::KubeApi& real, FakeKubeServer& server)
      : DelegatingKubeApi(real), server_(server) {}
  kube::ObjectListPage list(const kube::ResourceType& type, const std::string& ns,
                            const kube::ListOptions& options) override {
    if (!options.continueToken.empty() && !expired_) {
      expired_ = true;
      server_.createPod(makeTaggedPod("ns", "late", keyFor(99)));
      server_.expireHistory();
    }
    limits_.push_back(options.limit);
    return real_.list(type, ns, options);
  }
  std::vector<int64_t> limits_;

 private:
  FakeKubeServer& server_;
  bool expired_ = false;
};

// Every watch fails at once with an ERROR event, while lists succeed.
class FailingWatchApi : public testing::DelegatingKubeApi {
 public:
  using DelegatingKubeApi::DelegatingKubeApi;
  void watch(const kube::ResourceType&, const std::string&, const kube::WatchOptions&,
             const std::function<bool(std::string_view)>& onLine, std::stop_token) override {
    ++watches;
    onLine(R"({"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError"}})");
  }
  std::atomic<int> watches{0};
};

TEST_F(InformerTest, BacksOffWhenEveryWatchFailsAlthoughListsSucceed) {
  FailingWatchApi api(*api_);
  InformerConfig config;
  config.namespaceName = "ns";
  config.backoff = BackoffConfig{std::chrono::milliseconds(20), std::chrono::milliseconds(400)};
  Informer informer(api, config, handler_, metrics_.pods);
  std::jthread thread([&](std::stop_token stop) { informer.run(stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  thread.request_stop();
  thread.join();
  // Delays of 20, 40, 80, ... ms capped at 400 ms allow about ten rounds in 1.5 s; a relist at
  // the initial rate each time would make dozens.
  EXPECT_GE(api.watches.load(), 3);
  EXPECT_LT(api.watches.load(), 20);
  // Each failed watch is followed by a relist (the stop may land between a list and its watch).
  EXPECT_GE(metrics_.pods.lists.value(), api.watches.load());
  EXPECT_LE(metrics_.pods.lists.value(), api.watches.load() + 1);
}

TEST_F(InformerTest, FallsBackToAnUnpagedListWhenTheContinueTokenExpires) {
  for (int i = 0; i < 5; ++i) server_.createPod(makeTaggedPod("ns", numbered("p", i), keyFor(i)));
  ExpiringContinueApi api(*api_, server_);
  InformerConfig config;
  config.namespaceName = "ns";
  config.pageSize = 2;
  Informer informer(api, config, handler_, metrics_.pods);
  std::jthread thread([&](std::stop_token stop) { informer.run(stop); });
  ASSERT_TRUE(watching());
  EXPECT_TRUE(handler_.saw("late"));
  EXPECT_EQ(handler_.distinctPods(), 6u);
  EXPECT_EQ(metrics_.pods.lists.value(), 1);
  EXPECT_EQ(informer.resumeVersion(), std::to_string(server_.resourceVersion()));
  ASSERT_GE(api.limits_.size(), 3u);
  EXPECT_EQ(api.limits_.back(), 0);  // the fallback asked for everything at once
}

TEST_F(InformerTest, StopCancelsAListInProgress) {
  server_.delayNextRequests(1, std::chrono::seconds(60), "/pods");
  kube::ClusterConfig config = configFor(server_);
  config.requestTimeout = std::chrono::seconds(120);  // only the stop can end the list early
  api_ = kube::makeKubeClient(config);
  start();
  ASSERT_TRUE(waitFor([&] { return server_.totalRequests() >= 1; }));
  auto stopped = std::async(std::launch::async, [&] {
    thread_.request_stop();
    thread_.join();
  });
  // Far below the minute the server would take to answer.
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  stopped.wait();
  EXPECT_EQ(metrics_.pods.lists.value(), 0);
}

TEST_F(InformerTest, WatchesAllNamespacesWhenNoneIsGiven) {
  server_.createPod(makeTaggedPod("a", "one", keyFor(1)));
  start("");
  ASSERT_TRUE(watching());
  server_.createPod(makeTaggedPod("b", "two", keyFor(2)));
  ASSERT_TRUE(waitFor([&] { return handler_.saw("one") && handler_.saw("two"); }));
  EXPECT_EQ(server_.watchRequests().front().namespaceName, "");
}

}  // namespace
}  // namespace kcache::watcher
