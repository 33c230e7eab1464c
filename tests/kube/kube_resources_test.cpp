// The real client (kube::makeKubeClient) against the fake API server over TLS, on the resources
// the Argo 3.4+ work needs beyond pods: Argo WorkflowTaskResults, ConfigMaps and Workflows. Each
// verb answers as the API server does, Status objects included.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

#include "kube/kube_client.h"
#include "tests/fakekube/raw_https.h"
#include "tests/kube/kube_test_support.h"

namespace kcache::kube {
namespace {

using fakekube::FakeKubeServer;
using json = nlohmann::json;
using testing::configFor;
using testing::numbered;
using testing::waitFor;

constexpr const char* kWorkflowLabel = "workflows.argoproj.io/workflow";
constexpr const char* kCompletedLabel = "workflows.argoproj.io/report-outputs-completed";
constexpr const char* kReplayLabel = "kcache.kubeflow.org/replayed-from";

// A WorkflowTaskResult as Argo's executor writes it (docs/argo-lines.md, "The WorkflowTaskResult").
json taskResult(const std::string& ns, const std::string& nodeId, const std::string& workflow) {
  json result;
  result["apiVersion"] = "argoproj.io/v1alpha1";
  result["kind"] = "WorkflowTaskResult";
  result["metadata"]["name"] = nodeId;
  result["metadata"]["namespace"] = ns;
  result["metadata"]["labels"][kWorkflowLabel] = workflow;
  result["metadata"]["labels"][kCompletedLabel] = "true";
  result["metadata"]["ownerReferences"] = json::array(
      {{{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Workflow"}, {"name", workflow}}});
  result["outputs"]["parameters"] =
      json::array({{{"name", "model"}, {"value", "s3://bucket/" + nodeId}}});
  return result;
}

json configMap(const std::string& ns, const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", {{"template", value}}}};
}

ListOptions selecting(const std::string& selector) {
  ListOptions options;
  options.labelSelector = selector;
  return options;
}

std::set<std::string> names(const std::vector<json>& objects) {
  std::set<std::string> result;
  for (const json& object : objects) result.insert(object["metadata"]["name"].get<std::string>());
  return result;
}

// Runs a KubeApi::watch on its own thread and keeps the parsed events.
class EventCollector {
 public:
  EventCollector(KubeApi& api, const ResourceType& type, const std::string& ns,
                 WatchOptions options) {
    thread_ = std::jthread([this, &api, type, ns, options](std::stop_token stop) {
      try {
        api.watch(
            type, ns, options,
            [this](std::string_view line) {
              std::lock_guard lock(mutex_);
              events_.push_back(json::parse(line));
              return true;
            },
            stop);
      } catch (const KubeApiError& e) {
        std::lock_guard lock(mutex_);
        error_ = e.what();
      }
      std::lock_guard lock(mutex_);
      ended_ = true;
    });
  }
  ~EventCollector() {
    thread_.request_stop();
    thread_.join();
  }

  bool waitForEvents(size_t count) {
    return waitFor([&] {
      std::lock_guard lock(mutex_);
      return events_.size() >= count;
    });
  }
  bool waitForEnd() {
    return waitFor([&] {
      std::lock_guard lock(mutex_);
      return ended_;
    });
  }
  std::vector<json> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  // Waits for `count` events, then for a bookmark after them: what the watch saw up to now,
  // bookmark last (empty when either wait ran out). Proves that nothing else was on the way.
  std::vector<json> eventsThroughBookmark(FakeKubeServer& server, size_t count) {
    if (!waitForEvents(count)) return {};
    server.sendBookmarks();
    if (!waitForEvents(count + 1)) return {};
    return events();
  }
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<json> events_;
  std::string error_;
  bool ended_ = false;
  std::jthread thread_;
};

WatchOptions watchFrom(const std::string& resourceVersion, const std::string& selector = "") {
  WatchOptions options;
  options.labelSelector = selector;
  options.resourceVersion = resourceVersion;
  options.allowWatchBookmarks = true;
  options.timeoutSeconds = 60;
  return options;
}

// Calls `call`, which must throw a KubeApiError; returns it.
template <typename Call>
KubeApiError apiErrorOf(Call call) {
  try {
    call();
  } catch (const KubeApiError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a KubeApiError";
  return KubeApiError(-1, "", "no error");
}

// ----- the same verbs on task results and on ConfigMaps -----

struct ResourceCase {
  ResourceType type;
  json (*make)(const std::string& ns, const std::string& name);
  const char* kind;
  const char* apiVersion;
};

// gtest prints a parameter in each test's name; without this, a hex dump of its bytes.
void PrintTo(const ResourceCase& resourceCase, std::ostream* out) {
  *out << resourceCase.kind;
}

json makeTaskResult(const std::string& ns, const std::string& name) {
  return taskResult(ns, name, "wf-1");
}
json makeConfigMap(const std::string& ns, const std::string& name) {
  return configMap(ns, name, "{}");
}

class ObjectVerbs : public ::testing::TestWithParam<ResourceCase> {
 protected:
  FakeKubeServer server_;
  std::unique_ptr<KubeApi> api_ = makeKubeClient(configFor(server_));
  const ResourceType& type() const { return GetParam().type; }
  std::string plural() const { return std::string(GetParam().type.plural); }
  json make(const std::string& ns, const std::string& name) const {
    return GetParam().make(ns, name);
  }
};

TEST_P(ObjectVerbs, CreateFillsMetadataAndGetReadsItBack) {
  json sent = make("ns1", "a");
  sent["metadata"].erase("namespace");  // taken from the path
  sent.erase("kind");                   // filled in by the server
  const json created = api_->create(type(), "ns1", sent);
  EXPECT_EQ(created["kind"], GetParam().kind);
  EXPECT_EQ(created["apiVersion"], GetParam().apiVersion);
  EXPECT_EQ(created["metadata"]["namespace"], "ns1");
  EXPECT_EQ(created["metadata"]["name"], "a");
  EXPECT_FALSE(created["metadata"].value("uid", "").empty());
  EXPECT_FALSE(created["metadata"].value("creationTimestamp", "").empty());
  EXPECT_EQ(created["metadata"]["resourceVersion"], std::to_string(server_.resourceVersion()));
  EXPECT_EQ(api_->get(type(), "ns1", "a"), created);
  EXPECT_EQ(server_.object(plural(), "ns1", "a"), created);
  EXPECT_EQ(server_.objects(plural()).size(), 1u);

  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path,
            std::string(type().apiPrefix) + "/namespaces/ns1/" + std::string(type().plural));
  EXPECT_EQ(requests[0].query, "");
  EXPECT_EQ(requests[0].contentType, "application/json");
  EXPECT_EQ(requests[0].body, sent);
  EXPECT_EQ(requests[0].status, 201);
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].path, requests[0].path + "/a");
  EXPECT_TRUE(requests[1].body.is_null());
  EXPECT_EQ(requests[1].status, 200);
  server_.clearRequests();
  EXPECT_TRUE(server_.requests().empty());
  EXPECT_FALSE(api_->get(type(), "ns2", "a").has_value());  // another namespace
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].status, 404);
}

TEST_P(ObjectVerbs, CreatingAnExistingNameIsAlreadyExists) {
  const json first = api_->create(type(), "ns", make("ns", "a"));
  json second = make("ns", "a");
  second["metadata"]["labels"]["other"] = "yes";
  const KubeApiError error = apiErrorOf([&] { api_->create(type(), "ns", second); });
  EXPECT_EQ(error.status(), 409);
  EXPECT_EQ(error.reason(), "AlreadyExists");
  EXPECT_NE(std::string(error.what()).find("already exists"), std::string::npos) << error.what();
  EXPECT_EQ(server_.object(plural(), "ns", "a"), first);
  // The same name in another namespace is another object.
  EXPECT_NO_THROW(api_->create(type(), "other", make("other", "a")));
}

TEST_P(ObjectVerbs, DryRunCreateAnswersButStoresNothing) {
  const int64_t before = server_.resourceVersion();
  EventCollector watch(*api_, type(), "", watchFrom(std::to_string(before)));
  ASSERT_TRUE(waitFor([&] { return server_.openWatchStreams() == 1; }));
  server_.clearRequests();

  const json answered = api_->create(type(), "ns", make("ns", "a"), CreateOptions{true});
  EXPECT_EQ(answered["metadata"]["name"], "a");
  EXPECT_EQ(answered["metadata"]["namespace"], "ns");
  EXPECT_FALSE(answered["metadata"].value("uid", "").empty());
  EXPECT_FALSE(server_.object(plural(), "ns", "a").has_value());
  EXPECT_FALSE(api_->get(type(), "ns", "a").has_value());
  EXPECT_EQ(server_.resourceVersion(), before);
  EXPECT_EQ(server_.requests()[0].query, "dryRun=All");
  EXPECT_EQ(server_.requests()[0].status, 201);

  // A real create afterwards is the first event the watch sees; a dry run of an existing name is
  // refused as the real create would be.
  api_->create(type(), "ns", make("ns", "a"));
  const KubeApiError error =
      apiErrorOf([&] { api_->create(type(), "ns", make("ns", "a"), CreateOptions{true}); });
  EXPECT_EQ(error.status(), 409);
  EXPECT_EQ(error.reason(), "AlreadyExists");
  const auto events = watch.eventsThroughBookmark(server_, 1);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[1]["type"], "BOOKMARK");
  EXPECT_EQ(events[1]["object"]["kind"], GetParam().kind);
}

TEST_P(ObjectVerbs, BodyNamespaceMustMatchThePath) {
  const KubeApiError error = apiErrorOf([&] { api_->create(type(), "ns1", make("ns2", "a")); });
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.reason(), "BadRequest");
  EXPECT_TRUE(server_.objects(plural()).empty());
}

TEST_P(ObjectVerbs, UpdateRefusesAStaleResourceVersion) {
  const json created = api_->create(type(), "ns", make("ns", "a"));
  json changed = created;
  changed["metadata"]["labels"]["step"] = "1";
  const json updated = api_->update(type(), "ns", "a", changed);
  EXPECT_EQ(updated["metadata"]["labels"]["step"], "1");
  EXPECT_EQ(updated["metadata"]["uid"], created["metadata"]["uid"]);
  EXPECT_NE(updated["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);

  changed["metadata"]["labels"]["step"] = "2";  // still carries the first resourceVersion
  const KubeApiError error = apiErrorOf([&] { api_->update(type(), "ns", "a", changed); });
  EXPECT_EQ(error.status(), 409);
  EXPECT_EQ(error.reason(), "Conflict");
  EXPECT_EQ(server_.object(plural(), "ns", "a"), updated);

  // Changed behind the client's back (as another writer would), then updated from a fresh read.
  server_.modifyObject(plural(), "ns", "a",
                       [](json& object) { object["metadata"]["labels"]["writer"] = "other"; });
  EXPECT_EQ(apiErrorOf([&] { api_->update(type(), "ns", "a", updated); }).status(), 409);
  json fresh = api_->get(type(), "ns", "a").value();
  fresh["metadata"]["labels"]["step"] = "3";
  EXPECT_EQ(api_->update(type(), "ns", "a", fresh)["metadata"]["labels"]["writer"], "other");

  const KubeApiError missing =
      apiErrorOf([&] { api_->update(type(), "ns", "missing", make("ns", "missing")); });
  EXPECT_EQ(missing.status(), 404);
  EXPECT_EQ(missing.reason(), "NotFound");
}

TEST_P(ObjectVerbs, MergePatchChangesOnlyWhatItNames) {
  const json created = api_->create(type(), "ns", make("ns", "a"));
  const json patch = {{"metadata", {{"labels", {{"added", "yes"}}}}}};
  const json patched = api_->mergePatch(type(), "ns", "a", patch);
  EXPECT_EQ(patched["metadata"]["labels"]["added"], "yes");
  json expected = created;
  expected["metadata"]["labels"]["added"] = "yes";
  expected["metadata"]["resourceVersion"] = patched["metadata"]["resourceVersion"];
  EXPECT_EQ(patched, expected);
  EXPECT_EQ(server_.object(plural(), "ns", "a"), patched);

  // null removes a field; identity fields cannot be patched away.
  const json removal = {{"metadata", {{"labels", {{"added", nullptr}}}, {"name", "renamed"}}}};
  const json after = api_->mergePatch(type(), "ns", "a", removal);
  EXPECT_FALSE(after["metadata"]["labels"].contains("added"));
  EXPECT_EQ(after["metadata"]["name"], "a");

  const auto patches = server_.patches();
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(patches[0].plural, plural());
  EXPECT_EQ(patches[0].contentType, "application/merge-patch+json");
  EXPECT_EQ(patches[0].body, patch);
  EXPECT_EQ(patches[0].status, 200);

  // A stale resourceVersion or another uid in the patch is a precondition that fails.
  const json stale = {{"metadata", {{"resourceVersion", created["metadata"]["resourceVersion"]}}}};
  EXPECT_EQ(apiErrorOf([&] { api_->mergePatch(type(), "ns", "a", stale); }).status(), 409);
  const json otherUid = {{"metadata", {{"uid", "someone-else"}}}};
  EXPECT_EQ(apiErrorOf([&] { api_->mergePatch(type(), "ns", "a", otherUid); }).status(), 409);
  const KubeApiError missing = apiErrorOf([&] { api_->mergePatch(type(), "ns", "b", patch); });
  EXPECT_EQ(missing.status(), 404);
  EXPECT_EQ(missing.reason(), "NotFound");
}

TEST_P(ObjectVerbs, DeleteRemovesAndThenIsNotFound) {
  api_->create(type(), "ns", make("ns", "a"));
  const int64_t before = server_.resourceVersion();
  EXPECT_TRUE(api_->remove(type(), "ns", "a"));
  EXPECT_EQ(server_.resourceVersion(), before + 1);
  EXPECT_FALSE(server_.object(plural(), "ns", "a").has_value());
  EXPECT_FALSE(api_->get(type(), "ns", "a").has_value());
  EXPECT_FALSE(api_->remove(type(), "ns", "a"));
  const auto requests = server_.requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "DELETE");
  EXPECT_EQ(requests[1].status, 200);
  EXPECT_EQ(requests.back().status, 404);
  // The name is free again.
  EXPECT_NO_THROW(api_->create(type(), "ns", make("ns", "a")));
}

TEST_P(ObjectVerbs, ErrorsAreKubernetesStatusObjects) {
  api_->create(type(), "ns", make("ns", "a"));
  const std::string collection =
      std::string(type().apiPrefix) + "/namespaces/ns/" + std::string(type().plural);
  const auto checkStatus = [](const fakekube::RawResponse& response, int code,
                              const std::string& reason) {
    EXPECT_EQ(response.status, code);
    EXPECT_EQ(response.contentType, "application/json");
    ASSERT_TRUE(response.body.is_object()) << response.status;
    EXPECT_EQ(response.body["kind"], "Status");
    EXPECT_EQ(response.body["apiVersion"], "v1");
    EXPECT_EQ(response.body["status"], "Failure");
    EXPECT_EQ(response.body["reason"], reason);
    EXPECT_EQ(response.body["code"], code);
    EXPECT_FALSE(response.body.value("message", "").empty());
  };
  checkStatus(fakekube::rawRequest(server_, "GET", collection + "/missing"), 404, "NotFound");
  const auto exists =
      fakekube::rawRequest(server_, "POST", collection, "application/json", make("ns", "a").dump());
  checkStatus(exists, 409, "AlreadyExists");
  EXPECT_EQ(exists.body["details"]["name"], "a");
  EXPECT_EQ(exists.body["details"]["kind"], plural());
  // Merge patch only: a JSON patch or a strategic merge patch is an unsupported media type.
  for (const char* contentType :
       {"application/json-patch+json", "application/strategic-merge-patch+json"}) {
    checkStatus(fakekube::rawRequest(server_, "PATCH", collection + "/a", contentType, "{}"), 415,
                "UnsupportedMediaType");
  }
  checkStatus(fakekube::rawRequest(server_, "POST", collection, "application/json", "[1"), 400,
              "BadRequest");
  checkStatus(fakekube::rawRequest(server_, "GET", collection + "?labelSelector=%3Dvalue"), 400,
              "BadRequest");
  checkStatus(fakekube::rawRequest(server_, "POST", collection + "?dryRun=Some", "application/json",
                                   make("ns", "b").dump()),
              400, "BadRequest");
  // Creating needs a namespace in the path.
  checkStatus(fakekube::rawRequest(server_, "POST", std::string(type().apiPrefix) + "/" + plural(),
                                   "application/json", make("ns", "b").dump()),
              405, "MethodNotAllowed");
  // A misspelt plural in a group the server knows does not exist.
  checkStatus(fakekube::rawRequest(server_, "GET",
                                   std::string(type().apiPrefix) + "/namespaces/ns/" +
                                       plural().substr(0, plural().size() - 1)),
              404, "NotFound");
  // The resource exists only under its own group and version.
  checkStatus(
      fakekube::rawRequest(server_, "GET", "/apis/example.com/v1/namespaces/ns/" + plural() + "/a"),
      404, "NotFound");
  EXPECT_EQ(server_.objects(plural()).size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Resources, ObjectVerbs,
    ::testing::Values(ResourceCase{resources::kWorkflowTaskResults, makeTaskResult,
                                   "WorkflowTaskResult", "argoproj.io/v1alpha1"},
                      ResourceCase{resources::kConfigMaps, makeConfigMap, "ConfigMap", "v1"}),
    [](const ::testing::TestParamInfo<ResourceCase>& info) {
      return std::string(info.param.kind);
    });

TEST(CustomResources, UpdateWithoutAResourceVersionIsInvalidOnlyForThem) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  api->create(resources::kWorkflowTaskResults, "ns", taskResult("ns", "a", "wf"));
  api->create(resources::kConfigMaps, "ns", configMap("ns", "a", "1"));
  // Argo's CRDs, as every custom resource, refuse an unconditional update; ConfigMaps take it.
  const KubeApiError error = apiErrorOf(
      [&] { api->update(resources::kWorkflowTaskResults, "ns", "a", taskResult("ns", "a", "x")); });
  EXPECT_EQ(error.status(), 422);
  EXPECT_EQ(error.reason(), "Invalid");
  EXPECT_EQ(
      server.object("workflowtaskresults", "ns", "a").value()["metadata"]["labels"][kWorkflowLabel],
      "wf");
  EXPECT_EQ(
      api->update(resources::kConfigMaps, "ns", "a", configMap("ns", "a", "2"))["data"]["template"],
      "2");
}

// ----- lists -----

class TaskResultLists : public ::testing::Test {
 protected:
  void SetUp() override {
    // a: wf-a final, b: wf-a replayed by kcache, c: wf-b, d: no workflow label, e: wf-a elsewhere.
    server_.createObject("workflowtaskresults", taskResult("ns", "a", "wf-a"));
    json replayed = taskResult("ns", "b", "wf-a");
    replayed["metadata"]["labels"][kReplayLabel] = "17";
    server_.createObject("workflowtaskresults", replayed);
    server_.createObject("workflowtaskresults", taskResult("ns", "c", "wf-b"));
    json unlabelled = taskResult("ns", "d", "wf-a");
    unlabelled["metadata"].erase("labels");
    server_.createObject("workflowtaskresults", unlabelled);
    server_.createObject("workflowtaskresults", taskResult("other", "e", "wf-a"));
    server_.createObject("configmaps", configMap("ns", "not-a-task-result", "{}"));
  }
  std::set<std::string> listed(const std::string& ns, const std::string& selector) {
    return names(api_->list(resources::kWorkflowTaskResults, ns, selecting(selector)).items);
  }

  FakeKubeServer server_;
  std::unique_ptr<KubeApi> api_ = makeKubeClient(configFor(server_));
};

TEST_F(TaskResultLists, EverySelectorForm) {
  using Names = std::set<std::string>;
  EXPECT_EQ(listed("ns", ""), (Names{"a", "b", "c", "d"}));
  EXPECT_EQ(listed("", ""), (Names{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(listed("ns", kWorkflowLabel), (Names{"a", "b", "c"}));
  EXPECT_EQ(listed("ns", std::string("!") + kReplayLabel), (Names{"a", "c", "d"}));
  EXPECT_EQ(listed("ns", std::string(kWorkflowLabel) + "=wf-a"), (Names{"a", "b"}));
  EXPECT_EQ(listed("ns", std::string(kWorkflowLabel) + "==wf-a"), (Names{"a", "b"}));
  EXPECT_EQ(listed("ns", std::string(kWorkflowLabel) + "!=wf-a"), (Names{"c", "d"}));
  EXPECT_EQ(listed("", std::string(kWorkflowLabel) + ",!" + kReplayLabel + "," + kCompletedLabel +
                           "=true"),
            (Names{"a", "c", "e"}));
  EXPECT_EQ(listed("", std::string(kWorkflowLabel) + "=wf-a,!" + kReplayLabel), (Names{"a", "e"}));
  EXPECT_EQ(listed("ns", std::string(kWorkflowLabel) + "=wf-none"), Names{});
  EXPECT_EQ(listed("empty", ""), Names{});
}

TEST_F(TaskResultLists, ListCarriesTheGlobalVersionAndPages) {
  const ObjectListPage all = api_->list(resources::kWorkflowTaskResults, "", ListOptions{});
  // The ConfigMap created last moved the one resourceVersion counter that all resources share.
  EXPECT_EQ(all.resourceVersion, std::to_string(server_.resourceVersion()));
  EXPECT_EQ(all.resourceVersion, "6");
  EXPECT_TRUE(all.continueToken.empty());

  ListOptions options;
  options.limit = 2;
  std::vector<std::string> paged;
  std::set<std::string> versions;
  do {
    const ObjectListPage page = api_->list(resources::kWorkflowTaskResults, "", options);
    EXPECT_LE(page.items.size(), 2u);
    for (const json& item : page.items) paged.push_back(item["metadata"]["name"]);
    versions.insert(page.resourceVersion);
    options.continueToken = page.continueToken;
    // Changes between pages do not show up: the pages come from one snapshot.
    server_.createObject("workflowtaskresults",
                         taskResult("ns", numbered("late", static_cast<int>(paged.size())), "wf"));
  } while (!options.continueToken.empty());
  EXPECT_EQ(paged, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(versions.size(), 1u);

  // A continue token from before a compaction is gone.
  options.continueToken.clear();
  const ObjectListPage first = api_->list(resources::kWorkflowTaskResults, "", options);
  ASSERT_FALSE(first.continueToken.empty());
  server_.deleteObject("workflowtaskresults", "ns", "a");
  server_.expireHistory();
  options.continueToken = first.continueToken;
  const KubeApiError error =
      apiErrorOf([&] { api_->list(resources::kWorkflowTaskResults, "", options); });
  EXPECT_EQ(error.status(), 410);
  EXPECT_EQ(error.reason(), "Expired");
}

TEST_F(TaskResultLists, WorkflowsAndConfigMapsAreReadableToo) {
  json workflow = {{"metadata", {{"name", "wf-a"}, {"namespace", "ns"}}},
                   {"status", {{"nodes", {{"a", {{"phase", "Succeeded"}}}}}}}};
  server_.createObject("workflows", workflow);
  const auto read = api_->get(resources::kWorkflows, "ns", "wf-a");
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ((*read)["kind"], "Workflow");
  EXPECT_EQ((*read)["apiVersion"], "argoproj.io/v1alpha1");
  EXPECT_EQ((*read)["status"]["nodes"]["a"]["phase"], "Succeeded");
  const auto map = api_->get(resources::kConfigMaps, "ns", "not-a-task-result");
  ASSERT_TRUE(map.has_value());
  EXPECT_EQ((*map)["data"]["template"], "{}");
  EXPECT_EQ(names(api_->list(resources::kConfigMaps, "", ListOptions{}).items),
            (std::set<std::string>{"not-a-task-result"}));
}

// ----- watches -----

TEST(TaskResultWatch, AcrossNamespacesSeesAddedModifiedDeleted) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  server.createObject("workflowtaskresults", taskResult("ns1", "before", "wf"));
  // From "" the watch starts with the current state as ADDED events.
  EventCollector watch(*api, resources::kWorkflowTaskResults, "",
                       watchFrom("", std::string("!") + kReplayLabel));
  ASSERT_TRUE(watch.waitForEvents(1));
  ASSERT_TRUE(waitFor([&] { return server.openWatchStreams() == 1; }));

  api->create(resources::kWorkflowTaskResults, "ns2", taskResult("ns2", "n1", "wf"));
  server.createObject("configmaps", configMap("ns2", "n1", "{}"));  // another resource
  server.modifyObject("workflowtaskresults", "ns2", "n1",
                      [](json& object) { object["metadata"]["labels"][kCompletedLabel] = "true"; });
  json replayed = taskResult("ns1", "replayed", "wf");
  replayed["metadata"]["labels"][kReplayLabel] = "3";
  server.createObject("workflowtaskresults", replayed);  // outside the selector
  // Entering the selector is an ADDED, leaving it a DELETED, as the API server's watch cache does.
  server.modifyObject("workflowtaskresults", "ns1", "replayed",
                      [](json& object) { object["metadata"]["labels"].erase(kReplayLabel); });
  server.modifyObject("workflowtaskresults", "ns1", "before",
                      [](json& object) { object["metadata"]["labels"][kReplayLabel] = "4"; });
  api->remove(resources::kWorkflowTaskResults, "ns2", "n1");
  ASSERT_TRUE(watch.waitForEvents(6));

  const auto events = watch.events();
  ASSERT_EQ(events.size(), 6u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"ADDED", "before"},   {"ADDED", "n1"},       {"MODIFIED", "n1"},
      {"ADDED", "replayed"}, {"DELETED", "before"}, {"DELETED", "n1"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(events[i]["type"], expected[i].first) << i;
    EXPECT_EQ(events[i]["object"]["metadata"]["name"], expected[i].second) << i;
    EXPECT_EQ(events[i]["object"]["kind"], "WorkflowTaskResult") << i;
  }
  // Versions only grow, and the last one is the server's.
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LT(std::stoll(events[i - 1]["object"]["metadata"]["resourceVersion"].get<std::string>()),
              std::stoll(events[i]["object"]["metadata"]["resourceVersion"].get<std::string>()));
  }
  EXPECT_EQ(events.back()["object"]["metadata"]["resourceVersion"],
            std::to_string(server.resourceVersion()));
  const auto watches = server.watchRequests();
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].plural, "workflowtaskresults");
  EXPECT_EQ(watches[0].namespaceName, "");
}

TEST(TaskResultWatch, NamespacedWatchSeesOnlyItsNamespace) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  const std::string from = std::to_string(server.resourceVersion());
  EventCollector watch(*api, resources::kWorkflowTaskResults, "ns1", watchFrom(from));
  ASSERT_TRUE(waitFor([&] { return server.openWatchStreams() == 1; }));
  server.createObject("workflowtaskresults", taskResult("ns2", "elsewhere", "wf"));
  server.createObject("workflowtaskresults", taskResult("ns1", "here", "wf"));
  server.deleteObject("workflowtaskresults", "ns2", "elsewhere");
  server.deleteObject("workflowtaskresults", "ns1", "here");
  const auto events = watch.eventsThroughBookmark(server, 2);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[1]["type"], "DELETED");
  EXPECT_EQ(events[1]["object"]["metadata"]["name"], "here");
  EXPECT_EQ(events[2]["type"], "BOOKMARK");
  EXPECT_EQ(events[2]["object"]["apiVersion"], "argoproj.io/v1alpha1");
  EXPECT_EQ(events[2]["object"]["metadata"]["resourceVersion"],
            std::to_string(server.resourceVersion()));
}

TEST(TaskResultWatch, ResumesFromAVersionAndIsGoneAfterCompaction) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  server.createObject("workflowtaskresults", taskResult("ns", "a", "wf"));
  const std::string afterA = std::to_string(server.resourceVersion());
  server.createObject("workflowtaskresults", taskResult("ns", "b", "wf"));
  server.modifyObject("workflowtaskresults", "ns", "a",
                      [](json& object) { object["outputs"]["result"] = "42"; });
  {
    // Resuming replays exactly what happened after that version.
    EventCollector watch(*api, resources::kWorkflowTaskResults, "ns", watchFrom(afterA));
    const auto events = watch.eventsThroughBookmark(server, 2);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0]["type"], "ADDED");
    EXPECT_EQ(events[0]["object"]["metadata"]["name"], "b");
    EXPECT_EQ(events[1]["type"], "MODIFIED");
    EXPECT_EQ(events[1]["object"]["outputs"]["result"], "42");
    EXPECT_EQ(events[2]["type"], "BOOKMARK");
  }
  server.expireHistory();
  // A watch from before the compaction gets one ERROR event with a 410 Status, then the end.
  EventCollector gone(*api, resources::kWorkflowTaskResults, "ns", watchFrom(afterA));
  ASSERT_TRUE(gone.waitForEnd());
  const auto events = gone.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["kind"], "Status");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  EXPECT_EQ(gone.error(), "");
  // From the current version the watch works again.
  EventCollector fresh(*api, resources::kWorkflowTaskResults, "ns",
                       watchFrom(std::to_string(server.resourceVersion())));
  ASSERT_TRUE(waitFor([&] { return server.openWatchStreams() == 1; }));
  server.deleteObject("workflowtaskresults", "ns", "b");
  ASSERT_TRUE(fresh.waitForEvents(1));
  EXPECT_EQ(fresh.events()[0]["type"], "DELETED");
}

TEST(TaskResultWatch, DroppedStreamEndsTheWatchWithAnError) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  EventCollector watch(*api, resources::kWorkflowTaskResults, "", watchFrom("0"));
  ASSERT_TRUE(waitFor([&] { return server.openWatchStreams() == 1; }));
  server.dropWatchStreams();
  ASSERT_TRUE(watch.waitForEnd());
  EXPECT_NE(watch.error().find("watch workflowtaskresults"), std::string::npos) << watch.error();
}

// ----- faults on the task-result path -----

TEST(TaskResultFaults, FailNextRequestsOnTheCreate) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  const json result = taskResult("ns", "node-1", "wf");
  for (const auto& [status, reason] :
       std::vector<std::pair<int, std::string>>{{403, "Forbidden"}, {500, "InternalError"}}) {
    server.failNextRequests(1, status, "/workflowtaskresults", "POST");
    // A GET of the same path and another resource pass: the failure waits for the POST.
    EXPECT_FALSE(api->get(resources::kWorkflowTaskResults, "ns", "node-1").has_value());
    EXPECT_NO_THROW(api->list(resources::kConfigMaps, "ns", ListOptions{}));
    const KubeApiError error =
        apiErrorOf([&] { api->create(resources::kWorkflowTaskResults, "ns", result); });
    EXPECT_EQ(error.status(), status);
    EXPECT_EQ(error.reason(), reason);
    EXPECT_FALSE(server.object("workflowtaskresults", "ns", "node-1").has_value());
    EXPECT_EQ(server.requests().back().status, status);
  }
  EXPECT_NO_THROW(api->create(resources::kWorkflowTaskResults, "ns", result));
  EXPECT_TRUE(server.object("workflowtaskresults", "ns", "node-1").has_value());
}

TEST(TaskResultFaults, DelayedCreateTimesOutButStillHappens) {
  FakeKubeServer server;
  ClusterConfig config = configFor(server);
  config.requestTimeout = std::chrono::milliseconds(200);
  auto impatient = makeKubeClient(config);
  const json result = taskResult("ns", "node-1", "wf");
  server.delayNextRequests(1, std::chrono::seconds(2), "workflowtaskresults", "POST");
  const KubeApiError error =
      apiErrorOf([&] { impatient->create(resources::kWorkflowTaskResults, "ns", result); });
  EXPECT_EQ(error.status(), 0) << error.what();
  // As on a real API server, the create still lands once the server gets to it, so a retry of
  // the admission finds it already there.
  ASSERT_TRUE(
      waitFor([&] { return server.object("workflowtaskresults", "ns", "node-1").has_value(); }));
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].status, 201);
  auto patient = makeKubeClient(configFor(server));
  const KubeApiError again =
      apiErrorOf([&] { patient->create(resources::kWorkflowTaskResults, "ns", result); });
  EXPECT_EQ(again.status(), 409);
  EXPECT_EQ(again.reason(), "AlreadyExists");
}

TEST(TaskResultFaults, DelayOnlyMatchingRequests) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  server.delayNextRequests(1, std::chrono::milliseconds(300), "/namespaces/slow/");
  // Requests elsewhere are answered while the matching one waits.
  std::jthread slow(
      [&] { EXPECT_NO_THROW(api->list(resources::kWorkflowTaskResults, "slow", ListOptions{})); });
  ASSERT_TRUE(waitFor([&] { return server.requests().size() == 1; }));
  auto other = makeKubeClient(configFor(server));
  EXPECT_NO_THROW(
      other->create(resources::kWorkflowTaskResults, "fast", taskResult("fast", "node", "wf")));
  slow.join();
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].path, "/apis/argoproj.io/v1alpha1/namespaces/slow/workflowtaskresults");
  EXPECT_EQ(requests[0].status, 200);
  EXPECT_EQ(requests[1].status, 201);
}

// ----- the test-side API -----

TEST(FakeServerObjects, TestSideChangesOfAnyResource) {
  FakeKubeServer server;
  const json created = server.createObject("widgets", {{"metadata", {{"name", "w"}}}});
  EXPECT_EQ(created["metadata"]["namespace"], "default");
  EXPECT_EQ(created["kind"], "Widget");
  EXPECT_THROW(server.createObject("widgets", {{"metadata", {{"name", "w"}}}}), std::logic_error);
  json replacement = {{"metadata", {{"name", "w"}}}, {"spec", {{"size", 2}}}};
  const json updated = server.updateObject("widgets", replacement);
  EXPECT_EQ(updated["metadata"]["uid"], created["metadata"]["uid"]);
  EXPECT_EQ(updated["spec"]["size"], 2);
  EXPECT_THROW(server.updateObject("widgets", {{"metadata", {{"name", "absent"}}}}),
               std::logic_error);
  EXPECT_THROW(server.modifyObject("widgets", "default", "absent", [](json&) {}), std::logic_error);
  server.deleteObject("widgets", "default", "w");
  server.deleteObject("widgets", "default", "w");  // nothing left: no-op
  EXPECT_TRUE(server.objects("widgets").empty());
  EXPECT_EQ(server.resourceVersion(), 3);

  // Pods and Leases are the same store.
  server.createPod(fakekube::makeTaggedPod("ns", "p", testing::keyFor(1)));
  EXPECT_EQ(server.objects("pods").size(), 1u);
  server.putLease({{"metadata", {{"name", "l"}, {"namespace", "kube"}}}});
  server.putLease(
      {{"metadata", {{"name", "l"}, {"namespace", "kube"}}}, {"spec", {{"holderIdentity", "x"}}}});
  EXPECT_EQ(server.object("leases", "kube", "l").value()["spec"]["holderIdentity"], "x");
  EXPECT_EQ(server.lease("kube", "l").value()["kind"], "Lease");
}

TEST(FakeServerObjects, UnknownResourcesAreServedUnderTheirOwnGroup) {
  FakeKubeServer server;
  auto api = makeKubeClient(configFor(server));
  const ResourceType widgets{"/apis/example.com/v1", "widgets", "widget"};
  const json created =
      api->create(widgets, "ns", {{"metadata", {{"name", "w"}}}, {"spec", {{"size", 1}}}});
  EXPECT_EQ(created["apiVersion"], "example.com/v1");
  EXPECT_EQ(created["kind"], "Widget");
  EXPECT_EQ(api->list(widgets, "", ListOptions{}).items.size(), 1u);
  EXPECT_EQ(server.objects("widgets").size(), 1u);
}

}  // namespace
}  // namespace kcache::kube
