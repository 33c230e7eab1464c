#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kube/kube_client.h"
#include "tests/kube/kube_test_support.h"

namespace kcache::kube {
namespace {

using fakekube::FakeKubeServer;
using fakekube::makeTaggedPod;
using testing::configFor;
using testing::keyFor;
using testing::numbered;
using testing::waitFor;

ListOptions listOptions(const std::string& selector, int64_t limit, const std::string& token) {
  ListOptions options;
  options.labelSelector = selector;
  options.limit = limit;
  options.continueToken = token;
  return options;
}

TEST(KubeClient, ListsPodsPageByPageWithLabelSelector) {
  FakeKubeServer server;
  for (int i = 0; i < 7; ++i) server.createPod(makeTaggedPod("ns1", numbered("p", i), keyFor(i)));
  auto untagged = makeTaggedPod("ns1", "untagged", keyFor(99));
  untagged["metadata"]["labels"].erase("pipelines.kubeflow.org/cache_id");
  server.createPod(untagged);
  server.createPod(makeTaggedPod("ns2", "other", keyFor(100)));

  auto api = makeKubeClient(configFor(server));
  ListOptions options = listOptions("pipelines.kubeflow.org/cache_id", 3, "");
  std::vector<std::string> names;
  std::string firstVersion;
  do {
    ObjectListPage page = api->list(resources::kPods, "ns1", options);
    if (firstVersion.empty()) firstVersion = page.resourceVersion;
    for (const auto& pod : page.items) names.push_back(pod["metadata"]["name"]);
    options.continueToken = page.continueToken;
  } while (!options.continueToken.empty());
  EXPECT_EQ(names.size(), 7u);
  EXPECT_EQ(firstVersion, std::to_string(server.resourceVersion()));

  const ObjectListPage all =
      api->list(resources::kPods, "", listOptions("pipelines.kubeflow.org/cache_id", 0, ""));
  EXPECT_EQ(all.items.size(), 8u);
  EXPECT_TRUE(all.continueToken.empty());
}

TEST(KubeClient, ExpiredContinueTokenIs410) {
  FakeKubeServer server;
  for (int i = 0; i < 4; ++i) server.createPod(makeTaggedPod("ns", numbered("p", i), keyFor(i)));
  auto api = makeKubeClient(configFor(server));
  const ObjectListPage first = api->list(resources::kPods, "ns", listOptions("", 2, ""));
  ASSERT_FALSE(first.continueToken.empty());
  server.createPod(makeTaggedPod("ns", "late", keyFor(9)));
  server.expireHistory();
  try {
    api->list(resources::kPods, "ns", listOptions("", 2, first.continueToken));
    FAIL() << "expected 410";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 410);
    EXPECT_EQ(e.reason(), "Expired");
  }
}

TEST(KubeClient, WatchStreamsEventsFromAVersionAndStopsPromptly) {
  FakeKubeServer server;
  server.createPod(makeTaggedPod("ns", "before", keyFor(1)));
  const std::string version = std::to_string(server.resourceVersion());
  auto api = makeKubeClient(configFor(server));

  std::mutex mutex;
  std::vector<nlohmann::json> events;
  std::stop_source stop;
  std::thread watcher([&] {
    api->watch(
        resources::kPods, "ns", WatchOptions{"pipelines.kubeflow.org/cache_id", version, true, 60},
        [&](std::string_view line) {
          std::lock_guard lock(mutex);
          events.push_back(nlohmann::json::parse(line));
          return true;
        },
        stop.get_token());
  });
  ASSERT_TRUE(waitFor([&] { return server.openWatchStreams() == 1; }));
  server.createPod(makeTaggedPod("ns", "after", keyFor(2)));
  server.createPod(makeTaggedPod("elsewhere", "ignored", keyFor(3)));
  server.modifyPod("ns", "after",
                   [](nlohmann::json& pod) { pod["status"]["phase"] = "Succeeded"; });
  server.sendBookmarks();
  ASSERT_TRUE(waitFor([&] {
    std::lock_guard lock(mutex);
    return events.size() >= 3;
  }));
  stop.request_stop();
  watcher.join();  // returns promptly although the stream is still open

  std::lock_guard lock(mutex);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "after");
  EXPECT_EQ(events[1]["type"], "MODIFIED");
  EXPECT_EQ(events[2]["type"], "BOOKMARK");
  EXPECT_EQ(events[2]["object"]["metadata"]["resourceVersion"],
            std::to_string(server.resourceVersion()));
  const auto requests = server.watchRequests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].resourceVersion, version);
  EXPECT_TRUE(requests[0].allowWatchBookmarks);
}

TEST(KubeClient, MergePatchTouchesOnlyTheGivenLabel) {
  FakeKubeServer server;
  const auto created = server.createPod(makeTaggedPod("ns", "p", keyFor(1)));
  auto api = makeKubeClient(configFor(server));
  const nlohmann::json patch = {{"metadata",
                                 {{"uid", created["metadata"]["uid"]},
                                  {"labels", {{"pipelines.kubeflow.org/cache_id", "17"}}}}}};
  const auto patched = api->mergePatch(resources::kPods, "ns", "p", patch);
  EXPECT_EQ(patched["metadata"]["labels"]["pipelines.kubeflow.org/cache_id"], "17");
  EXPECT_EQ(patched["metadata"]["labels"]["pipelines.kubeflow.org/cache_enabled"], "true");
  const auto patches = server.patches();
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].contentType, "application/merge-patch+json");
  EXPECT_EQ(patches[0].body, patch);

  // A pod replaced under the same name refuses a patch carrying the old uid.
  server.deletePod("ns", "p");
  server.createPod(makeTaggedPod("ns", "p", keyFor(1)));
  try {
    api->mergePatch(resources::kPods, "ns", "p", patch);
    FAIL() << "expected a conflict";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 409);
  }
  try {
    api->mergePatch(resources::kPods, "ns", "missing", patch);
    FAIL() << "expected not found";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 404);
  }
}

TEST(KubeClient, LeasesUseOptimisticConcurrency) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  EXPECT_FALSE(api->get(resources::kLeases, "kube", "l").has_value());
  const nlohmann::json lease = {{"metadata", {{"name", "l"}, {"namespace", "kube"}}},
                                {"spec", {{"holderIdentity", "a"}}}};
  const auto created = api->create(resources::kLeases, "kube", lease);
  EXPECT_THROW(api->create(resources::kLeases, "kube", lease), KubeApiError);
  auto update = created;
  update["spec"]["holderIdentity"] = "b";
  const auto updated = api->update(resources::kLeases, "kube", "l", update);
  EXPECT_EQ(updated["spec"]["holderIdentity"], "b");
  try {
    api->update(resources::kLeases, "kube", "l", update);  // stale resourceVersion now
    FAIL() << "expected a conflict";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 409);
  }
  EXPECT_EQ(api->get(resources::kLeases, "kube", "l").value()["spec"]["holderIdentity"], "b");
}

TEST(KubeClient, ServerErrorsCarryStatusAndReason) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  server.failNextRequests(1, 500);
  try {
    api->list(resources::kPods, "", ListOptions{});
    FAIL() << "expected an error";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 500);
    EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos);
  }
  EXPECT_NO_THROW(api->list(resources::kPods, "", ListOptions{}));
}

TEST(KubeClient, RefusesAServerSignedByAnotherCa) {
  FakeKubeServer server;
  ClusterConfig config = configFor(server);
  config.caData = fakekube::makeSelfSignedServerCa("someone-else").certificate;
  auto api = makeKubeClient(config);
  try {
    api->list(resources::kPods, "", ListOptions{});
    FAIL() << "expected a TLS failure";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 0);
  }
  config.insecureSkipTlsVerify = true;
  EXPECT_NO_THROW(makeKubeClient(config)->list(resources::kPods, "", ListOptions{}));
}

TEST(KubeClient, PresentsAClientCertificate) {
  fakekube::FakeKubeOptions options;
  options.requireClientCertificate = true;
  FakeKubeServer server(options);
  ClusterConfig config = configFor(server);
  EXPECT_THROW(makeKubeClient(config)->list(resources::kPods, "", ListOptions{}), KubeApiError);
  const auto client = fakekube::issueClientCertificate(server.serverCa(), "kcache");
  config.clientCertData = client.certificate;
  config.clientKeyData = client.privateKey;
  EXPECT_NO_THROW(makeKubeClient(config)->list(resources::kPods, "", ListOptions{}));
}

TEST(KubeClient, RereadsTheTokenFileWhenItRotates) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("kcache-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto tokenFile = dir / "token";
  std::ofstream(tokenFile) << "first-token\n";

  fakekube::FakeKubeOptions options;
  options.bearerToken = "first-token";
  FakeKubeServer server(options);
  ClusterConfig config = configFor(server);
  config.bearerTokenFile = tokenFile;
  auto api = makeKubeClient(config);
  EXPECT_NO_THROW(api->list(resources::kPods, "", ListOptions{}));

  // Rotate: the server now wants the new token, and the file holds it (written aside, renamed in
  // place as kubelet does).
  server.setBearerToken("second-token");
  EXPECT_THROW(api->list(resources::kPods, "", ListOptions{}), KubeApiError);
  std::ofstream(dir / "token.new") << "second-token-and-longer\n";
  server.setBearerToken("second-token-and-longer");
  std::filesystem::rename(dir / "token.new", tokenFile);
  EXPECT_NO_THROW(api->list(resources::kPods, "", ListOptions{}));
  EXPECT_EQ(server.unauthorizedRequests(), 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kcache::kube
