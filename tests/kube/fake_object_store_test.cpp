// The fake API server's REST semantics directly (tests/fakekube/object_store.h), for the cases the
// real client cannot reach or that need a small history: label selector parsing, compaction by
// history size, dry runs of every verb, generateName, DeleteOptions preconditions.
#include <gtest/gtest.h>

#include "tests/fakekube/object_store.h"

namespace kcache::fakekube {
namespace {

using json = nlohmann::json;

json labelled(const json& labels) {
  return {{"metadata", {{"name", "x"}, {"labels", labels}}}};
}

TEST(FakeLabelSelector, ParsesEveryFormWithSpaces) {
  const json object = labelled({{"a", "1"}, {"b", "2"}, {"n", 3}});
  EXPECT_TRUE(LabelSelector("").matches(object));
  EXPECT_TRUE(LabelSelector(" a = 1 , b==2,!c, b != 3").matches(object));
  EXPECT_FALSE(LabelSelector("a,c").matches(object));
  EXPECT_FALSE(LabelSelector("a!=1").matches(object));
  EXPECT_FALSE(LabelSelector("a=2").matches(object));
  // A label whose value is not a string does not count as set.
  EXPECT_TRUE(LabelSelector("!n").matches(object));
  EXPECT_FALSE(LabelSelector("a").matches(json{{"metadata", {{"name", "x"}}}}));
  EXPECT_TRUE(LabelSelector("!a").matches(json::object()));
  for (const char* invalid : {"=1", "!", "a in (1,2)", "!=x"}) {
    EXPECT_THROW(LabelSelector{invalid}, std::invalid_argument) << invalid;
  }
}

class FakeObjectStore : public ::testing::Test {
 protected:
  ObjectStore store_{100};
  ResourceInfo results_ = store_.resource("workflowtaskresults");
  ResourceInfo maps_ = store_.resource("configmaps");

  json created(const std::string& name) {
    const ApiResult result = store_.create(results_, "ns", {{"metadata", {{"name", name}}}}, false);
    EXPECT_EQ(result.status, 201) << result.body.dump();
    return result.body;
  }
};

TEST_F(FakeObjectStore, KnowsArgoAndCoreResources) {
  EXPECT_EQ(results_.apiVersion, "argoproj.io/v1alpha1");
  EXPECT_EQ(results_.kind, "WorkflowTaskResult");
  EXPECT_EQ(results_.qualifiedName(), "workflowtaskresults.argoproj.io");
  EXPECT_FALSE(results_.builtIn());
  EXPECT_EQ(maps_.qualifiedName(), "configmaps");
  EXPECT_TRUE(maps_.builtIn());
  EXPECT_TRUE(store_.resource("leases").builtIn());
  const ResourceInfo policies = store_.resource("policies", "example.com/v2");
  EXPECT_EQ(policies.kind, "Policy");
  EXPECT_EQ(policies.apiVersion, "example.com/v2");
  // Once known, a plural keeps its group.
  EXPECT_EQ(store_.resource("policies", "other.io/v1").apiVersion, "example.com/v2");
}

TEST_F(FakeObjectStore, ServesKnownGroupsExactlyAndOtherGroupsAsTheyCome) {
  EXPECT_EQ(store_.served("workflowtaskresults", "argoproj.io/v1alpha1", "")->kind,
            "WorkflowTaskResult");
  EXPECT_FALSE(store_.served("workflowtaskresults", "argoproj.io/v1", "").has_value());
  EXPECT_FALSE(store_.served("workflowtaskresult", "argoproj.io/v1alpha1", "").has_value());
  EXPECT_FALSE(store_.served("configmap", "v1", "").has_value());
  EXPECT_FALSE(store_.served("pods", "apps/v1", "").has_value());
  EXPECT_FALSE(store_.served("gadgets", "batch.k8s.io/v1", "").has_value());
  EXPECT_EQ(store_.served("gadgets", "example.com/v1", "Gizmo")->kind, "Gizmo");
  EXPECT_FALSE(store_.served("gadgets", "example.org/v1", "").has_value());
  // A plural the test introduced is served wherever it put it, core group included.
  store_.resource("widgets", "v1");
  EXPECT_EQ(store_.served("widgets", "v1", "")->kind, "Widget");
}

TEST_F(FakeObjectStore, DryRunsOfEveryVerbChangeNothing) {
  const json object = created("a");
  const int64_t version = store_.version();
  json changed = object;
  changed["outputs"] = {{"result", "1"}};
  EXPECT_EQ(store_.update(results_, "ns", "a", changed, true).status, 200);
  const ApiResult patched = store_.mergePatch(results_, "ns", "a", {{"outputs", 1}}, true);
  EXPECT_EQ(patched.status, 200);
  EXPECT_EQ(patched.body["outputs"], 1);
  EXPECT_EQ(store_.remove(results_, "ns", "a", nullptr, true).status, 200);
  const ApiResult dryCreate = store_.create(results_, "ns", {{"metadata", {{"name", "b"}}}}, true);
  EXPECT_EQ(dryCreate.status, 201);
  EXPECT_FALSE(dryCreate.body["metadata"].contains("resourceVersion"));
  EXPECT_EQ(store_.version(), version);
  EXPECT_FALSE(store_.hasEventsAfter(version));
  EXPECT_EQ(store_.object("workflowtaskresults", "ns", "a"), object);
  EXPECT_FALSE(store_.object("workflowtaskresults", "ns", "b").has_value());
}

TEST_F(FakeObjectStore, GenerateNameAndMissingName) {
  const ApiResult generated =
      store_.create(results_, "ns", {{"metadata", {{"generateName", "wf-"}}}}, false);
  ASSERT_EQ(generated.status, 201);
  const std::string name = generated.body["metadata"]["name"];
  EXPECT_EQ(name.rfind("wf-", 0), 0u);
  EXPECT_EQ(name.size(), 8u);
  const ApiResult unnamed = store_.create(results_, "ns", json::object(), false);
  EXPECT_EQ(unnamed.status, 422);
  EXPECT_EQ(unnamed.body["reason"], "Invalid");
}

TEST_F(FakeObjectStore, UpdatesAndDeletesCheckPreconditions) {
  const json object = created("a");
  const std::string uid = object["metadata"]["uid"];
  const std::string version = object["metadata"]["resourceVersion"];

  json renamed = object;
  renamed["metadata"]["name"] = "b";
  EXPECT_EQ(store_.update(results_, "ns", "a", renamed, false).status, 400);
  json unversioned = object;
  unversioned["metadata"].erase("resourceVersion");
  const ApiResult invalid = store_.update(results_, "ns", "a", unversioned, false);
  EXPECT_EQ(invalid.status, 422) << "custom resources need a resourceVersion to update";
  EXPECT_EQ(invalid.body["reason"], "Invalid");

  const json wrongUid = {{"preconditions", {{"uid", "other"}}}};
  EXPECT_EQ(store_.remove(results_, "ns", "a", wrongUid, false).status, 409);
  const json staleVersion = {{"preconditions", {{"resourceVersion", "0"}}}};
  EXPECT_EQ(store_.remove(results_, "ns", "a", staleVersion, false).status, 409);
  ASSERT_TRUE(store_.object("workflowtaskresults", "ns", "a").has_value());
  const json matching = {{"preconditions", {{"uid", uid}, {"resourceVersion", version}}}};
  const ApiResult removed = store_.remove(results_, "ns", "a", matching, false);
  EXPECT_EQ(removed.status, 200);
  EXPECT_EQ(removed.body["metadata"]["resourceVersion"], std::to_string(store_.version()));
  EXPECT_EQ(store_.remove(results_, "ns", "a", nullptr, false).status, 404);
}

TEST(FakeObjectStoreHistory, OldVersionsAreCompactedAwayBySize) {
  ObjectStore store(3);
  const ResourceInfo maps = store.resource("configmaps");
  for (int i = 0; i < 5; ++i) {
    const std::string name = "m" + std::to_string(i);
    ASSERT_EQ(store.create(maps, "ns", {{"metadata", {{"name", name}}}}, false).status, 201);
  }
  const LabelSelector everything("");
  // Versions 1 and 2 fell out of a history of 3 events.
  EXPECT_TRUE(store.startWatch(maps, "ns", everything, "1").expired);
  ObjectStore::WatchStart start = store.startWatch(maps, "ns", everything, "2");
  ASSERT_FALSE(start.expired);
  EXPECT_TRUE(start.events.empty());
  const auto events = store.eventsAfter(start.cursor, maps, "ns", everything);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "m2");
  EXPECT_EQ(start.cursor, 5);
  // Events of other resources move the cursor but are not this watch's.
  const ResourceInfo results = store.resource("workflowtaskresults");
  ASSERT_EQ(store.create(results, "ns", {{"metadata", {{"name", "r"}}}}, false).status, 201);
  EXPECT_TRUE(store.eventsAfter(start.cursor, maps, "ns", everything).empty());
  EXPECT_EQ(start.cursor, 6);
  // From "" a watch starts with the current state.
  EXPECT_EQ(store.startWatch(maps, "", everything, "").events.size(), 5u);
}

}  // namespace
}  // namespace kcache::fakekube
