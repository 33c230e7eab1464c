#include <gtest/gtest.h>

#include "core/pod_template.h"

namespace kcache::core {
namespace {

using nlohmann::json;

json container(std::string name, std::optional<std::string> argoTemplate) {
  json c = {{"name", name}, {"env", json::array({{{"name", "OTHER"}, {"value", "x"}}})}};
  if (argoTemplate) c["env"].push_back({{"name", "ARGO_TEMPLATE"}, {"value", *argoTemplate}});
  return c;
}

TEST(FindArgoTemplate, FirstContainerWinsAsInKubeflow) {
  const json pod = {{"spec",
                     {{"containers", json::array({container("wait", "{\"a\":1}"),
                                                  container("main", "{\"b\":2}")})}}}};
  const auto found = findArgoTemplate(pod);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->argoTemplate, "{\"a\":1}");
  EXPECT_EQ(found->containerName, "wait");
}

TEST(FindArgoTemplate, FallsBackToMainThenInitContainers) {
  json pod = {
      {"spec",
       {{"containers", json::array({container("wait", std::nullopt), container("main", "M")})}}}};
  EXPECT_EQ(findArgoTemplate(pod)->containerName, "main");

  pod["spec"]["containers"][1] = container("main", std::nullopt);
  pod["spec"]["initContainers"] = json::array({container("init", "I")});
  const auto found = findArgoTemplate(pod);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->argoTemplate, "I");
  EXPECT_EQ(found->containerName, "init");
}

TEST(FindArgoTemplate, ValueFromDoesNotCount) {
  json first = container("main", std::nullopt);
  first["env"].push_back(
      {{"name", "ARGO_TEMPLATE"}, {"valueFrom", {{"configMapKeyRef", {{"name", "x"}}}}}});
  EXPECT_FALSE(findArgoTemplate({{"spec", {{"containers", json::array({first})}}}}).has_value());
}

TEST(FindArgoTemplate, ToleratesAnyShape) {
  for (const json& pod :
       {json(), json(1), json::array(), json({{"spec", 1}}), json({{"spec", {{"containers", 1}}}}),
        json({{"spec", {{"containers", json::array({1, "x"})}}}}),
        json({{"spec", {{"containers", json::array({{{"env", {{"name", 1}}}}})}}}}),
        json({{"spec", {{"containers", json::array()}, {"initContainers", {{"a", 1}}}}}})}) {
    EXPECT_FALSE(findArgoTemplate(pod).has_value()) << pod.dump();
  }
}

}  // namespace
}  // namespace kcache::core
