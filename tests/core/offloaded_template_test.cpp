// Which ConfigMap's offloaded template may be used: only one owned by the pod's Workflow.
#include "core/offloaded_template.h"

#include <gtest/gtest.h>

namespace kcache::core {
namespace {

using nlohmann::json;

json ownedBy(const json& references) {
  return {{"metadata", {{"name", "pod-1"}, {"ownerReferences", references}}},
          {"data", {{"ARGO_TEMPLATE", "{\"name\":\"t\"}"}}}};
}

json workflowReference(const std::string& uid,
                       const std::string& apiVersion = "argoproj.io/v1alpha1") {
  return {{"apiVersion", apiVersion}, {"kind", "Workflow"}, {"name", "wf"}, {"uid", uid}};
}

TEST(OffloadedTemplate, ThePodsWorkflowIsItsWorkflowOwner) {
  EXPECT_EQ(workflowOwnerUid(ownedBy(json::array({workflowReference("u-1")}))), "u-1");
  const json replicaSetOwned =
      ownedBy(json::array({{{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"uid", "rs"}},
                           workflowReference("u-2")}));
  EXPECT_EQ(workflowOwnerUid(replicaSetOwned), "u-2");
  // A "Workflow" of another API group is not Argo's.
  EXPECT_FALSE(workflowOwnerUid(ownedBy(json::array({workflowReference("u", "example.com/v1")}))));
  EXPECT_FALSE(workflowOwnerUid(json::object()));
  EXPECT_FALSE(workflowOwnerUid(json::array()));
  EXPECT_FALSE(workflowOwnerUid(ownedBy("not an array")));
}

TEST(OffloadedTemplate, IsReadOnlyFromAConfigMapOwnedByThatWorkflow) {
  const auto owned = offloadedTemplateOf(ownedBy(json::array({workflowReference("u-1")})), "u-1");
  ASSERT_TRUE(owned);
  EXPECT_EQ(owned.value(), "{\"name\":\"t\"}");

  EXPECT_FALSE(offloadedTemplateOf(ownedBy(json::array({workflowReference("u-2")})), "u-1"));
  EXPECT_FALSE(offloadedTemplateOf(ownedBy(json::array()), "u-1"));
  EXPECT_FALSE(
      offloadedTemplateOf(ownedBy(json::array({workflowReference("u-1", "x.io/v1")})), "u-1"));
  // A pod without a Workflow owner can use no ConfigMap, not even one with an empty uid.
  EXPECT_FALSE(offloadedTemplateOf(ownedBy(json::array({workflowReference("")})), ""));

  json withoutKey = ownedBy(json::array({workflowReference("u-1")}));
  withoutKey["data"] = json::object();
  const auto missing = offloadedTemplateOf(withoutKey, "u-1");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("ARGO_TEMPLATE"), std::string::npos);
  withoutKey["data"] = {{"ARGO_TEMPLATE", 42}};
  EXPECT_FALSE(offloadedTemplateOf(withoutKey, "u-1"));
  EXPECT_FALSE(offloadedTemplateOf(json("junk"), "u-1"));
}

}  // namespace
}  // namespace kcache::core
