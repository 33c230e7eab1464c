#include <gtest/gtest.h>

#include <fstream>

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

TEST(FindArgoTemplate, SupervisorOfAnInitLessPodCounts) {
  // Not first (a sidecar-first order), no `main` template, no init containers: 4.1 init-less.
  const json pod = {{"spec",
                     {{"containers", json::array({container("sidecar", std::nullopt),
                                                  container("main", std::nullopt),
                                                  container("supervisor", "S")})}}}};
  const auto found = findArgoTemplate(pod);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->argoTemplate, "S");
  EXPECT_EQ(found->containerName, "supervisor");
  EXPECT_FALSE(found->offloaded);
}

TEST(FindArgoTemplate, InitContainersComeBeforeSupervisor) {
  json pod = {{"spec",
               {{"containers",
                 json::array({container("sidecar", std::nullopt), container("supervisor", "S")})},
                {"initContainers", json::array({container("init", "I")})}}}};
  EXPECT_EQ(findArgoTemplate(pod)->containerName, "init");
}

TEST(FindArgoTemplate, OffloadedValueIsReported) {
  const json pod = {{"spec",
                     {{"containers", json::array({container("wait", std::nullopt),
                                                  container("main", std::nullopt)})},
                      {"initContainers", json::array({container("init", "offloaded")})}}}};
  const auto found = findArgoTemplate(pod);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->offloaded);
  EXPECT_EQ(found->argoTemplate, "offloaded");
  EXPECT_EQ(found->containerName, "init");

  // Only the exact literal means offloaded.
  json other = pod;
  other["spec"]["initContainers"][0] = container("init", "Offloaded");
  EXPECT_FALSE(findArgoTemplate(other)->offloaded);
}

TEST(DetectArgoLayout, FromWhereTheTemplateIs) {
  const json onMain = {
      {"spec",
       {{"containers", json::array({container("wait", "T"), container("main", "T")})},
        {"initContainers", json::array({container("init", "T")})}}}};
  EXPECT_EQ(detectArgoLayout(onMain).layout, ArgoLayout::kTemplateOnMain);

  const json onInit = {{"spec",
                        {{"containers", json::array({container("wait", std::nullopt),
                                                     container("main", std::nullopt)})},
                         {"initContainers", json::array({container("init", "T")})}}}};
  EXPECT_EQ(detectArgoLayout(onInit).layout, ArgoLayout::kTemplateOnInit);

  const json onSupervisor = {{"spec",
                              {{"containers", json::array({container("supervisor", "T"),
                                                           container("main", std::nullopt)})}}}};
  EXPECT_EQ(detectArgoLayout(onSupervisor).layout, ArgoLayout::kTemplateOnSupervisor);

  const json nowhere = {{"spec", {{"containers", json::array({container("step", "T")})}}}};
  EXPECT_EQ(detectArgoLayout(nowhere).layout, ArgoLayout::kUnknown);
}

TEST(DetectArgoLayout, WorkflowUidOnWaitMeansExecutorFrom352) {
  json wait = container("wait", std::nullopt);
  const json pod = {{"spec", {{"containers", json::array({wait, container("main", "T")})}}}};
  EXPECT_FALSE(detectArgoLayout(pod).workflowUidOnWait);
  wait["env"].push_back({{"name", "ARGO_WORKFLOW_UID"}, {"value", "u"}});
  const json newer = {{"spec", {{"containers", json::array({wait, container("main", "T")})}}}};
  EXPECT_TRUE(detectArgoLayout(newer).workflowUidOnWait);
}

TEST(DetectArgoLayout, ToleratesAnyShape) {
  for (const json& pod : {json(), json(1), json({{"spec", {{"containers", 1}}}}),
                          json({{"spec", {{"containers", json::array({1})}}}})}) {
    EXPECT_EQ(detectArgoLayout(pod).layout, ArgoLayout::kUnknown) << pod.dump();
    EXPECT_FALSE(detectArgoLayout(pod).workflowUidOnWait);
  }
}

// The pod fixtures of docs/argo-lines.md, "Pod layout per line", one per Argo line.
struct LayoutCase {
  const char* fixture;
  const char* templateContainer;
  bool offloaded;
  ArgoLayout layout;
  bool workflowUidOnWait;
};

// gtest prints a parameter in each test's name; without this, a hex dump of its bytes.
void PrintTo(const LayoutCase& layoutCase, std::ostream* out) {
  *out << layoutCase.fixture;
}

json readPodFixture(const std::string& name) {
  std::ifstream in(std::string(KCACHE_TEST_DATA_DIR) + "/pods/" + name + ".json");
  EXPECT_TRUE(in.good()) << name;
  return json::parse(in);
}

class ArgoPodFixtures : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(ArgoPodFixtures, TemplateAndLayout) {
  const LayoutCase& c = GetParam();
  const json pod = readPodFixture(c.fixture);
  const auto found = findArgoTemplate(pod);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->containerName, c.templateContainer);
  EXPECT_EQ(found->offloaded, c.offloaded);
  if (!c.offloaded) {
    EXPECT_EQ(json::parse(found->argoTemplate).at("name"), "train");
  }
  const auto layout = detectArgoLayout(pod);
  EXPECT_EQ(layout.layout, c.layout) << toString(layout.layout);
  EXPECT_EQ(layout.workflowUidOnWait, c.workflowUidOnWait);
}

INSTANTIATE_TEST_SUITE_P(
    EveryArgoLine, ArgoPodFixtures,
    ::testing::Values(
        LayoutCase{"argo-3.3", "wait", false, ArgoLayout::kTemplateOnMain, false},
        LayoutCase{"argo-3.5", "wait", false, ArgoLayout::kTemplateOnMain, true},
        LayoutCase{"argo-3.6", "init", false, ArgoLayout::kTemplateOnInit, true},
        LayoutCase{"argo-4.1-legacy", "init", false, ArgoLayout::kTemplateOnInit, true},
        LayoutCase{"argo-4.1-initless", "supervisor", false, ArgoLayout::kTemplateOnSupervisor,
                   false},
        LayoutCase{"argo-3.6-offloaded", "init", true, ArgoLayout::kTemplateOnInit, true}),
    [](const auto& info) {
      std::string name = info.param.fixture;
      for (char& c : name) {
        if (c == '-' || c == '.') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace kcache::core
