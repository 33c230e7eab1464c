// Least privilege and secrets, against the real cache-server: by default a ConfigMap an attacker
// names after a pod is never read (no request is made at all), a ConfigMap not owned by the pod's
// Workflow is never used when reading is on, and a database password given on the command line
// is not left readable in /proc/<pid>/cmdline.
#include "store/cache_store.h"
#include "tests/security/attack_server_fixture.h"

namespace kcache {
namespace {

using security_testing::AttackedServer;
using security_testing::json;
using security_testing::podFixture;
using security_testing::reviewOf;
using std::chrono::seconds;

constexpr const char* kSkips = R"(kcache_admission_skips_total{reason="template_offloaded"})";
constexpr const char* kRefusals =
    R"(kcache_watcher_record_refusals_total{reason="template_offloaded"})";

int64_t configMapRequests(fakekube::FakeKubeServer& kube) {
  int64_t count = 0;
  for (const auto& request : kube.requests()) {
    if (request.path.find("/configmaps") != std::string::npos) ++count;
  }
  return count;
}

// The offloaded pod's ConfigMap, planted by someone with ConfigMap rights in the namespace: named
// after the pod, carrying the template of another step.
json plantedConfigMap(const json& pod) {
  std::ifstream in(std::filesystem::path(KCACHE_TEST_DATA_DIR) / "pods" /
                   "argo-3.6-offloaded.configmap.json");
  json configMap = json::parse(in);
  configMap["metadata"]["name"] = pod["metadata"]["name"];
  configMap["metadata"].erase("ownerReferences");
  return configMap;
}

// What the kubelet reports for a step that ran: main exited 0.
void completeStep(fakekube::FakeKubeServer& kube, const json& pod) {
  kube.modifyPod(pod["metadata"]["namespace"], pod["metadata"]["name"], [](json& stored) {
    stored["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = "{}";
    stored["status"] = json::parse(R"({"phase": "Succeeded", "containerStatuses": [
      {"name": "main", "state": {"terminated": {"exitCode": 0,
        "startedAt": "2026-11-22T08:00:00Z", "finishedAt": "2026-11-22T08:00:10Z"}}}]})");
  });
}

TEST(AttackLeastPrivilegeTest, OffloadedTemplatesAreNeitherReadNorRecordedByDefault) {
  AttackedServer server("offloaded_default", {"--watch-task-results=false"});
  ASSERT_TRUE(server.waitUntilReady());
  json pod = podFixture("argo-3.6-offloaded");
  pod["metadata"]["labels"]["pipelines.kubeflow.org/cache_id"] = "";
  server.kube().createObject("configmaps", plantedConfigMap(pod));
  server.kube().clearRequests();

  auto client = server.client();
  const auto response = client->postReview(reviewOf(pod).dump());
  ASSERT_EQ(response.status, 200);
  const auto answer = webhook::testing::applyAnswer(pod, response.body);
  EXPECT_TRUE(answer.allowed);
  EXPECT_FALSE(answer.hasPatch);
  EXPECT_EQ(server.metric(kSkips), 1);

  // The pod runs and completes with the key annotation an attacker would add: not recorded.
  pod["metadata"]["annotations"]["pipelines.kubeflow.org/execution_cache_key"] =
      std::string(64, 'a');
  server.kube().createPod(pod);
  completeStep(server.kube(), pod);
  ASSERT_TRUE(kube::testing::waitFor([&] { return server.metric(kRefusals) == 1; }, seconds(30)))
      << server.log();
  EXPECT_EQ(configMapRequests(server.kube()), 0) << "kcache never asked for a ConfigMap";
  EXPECT_EQ(server.metric("kcache_watcher_entries_recorded_total"), 0);
}

TEST(AttackLeastPrivilegeTest, WhenReadingIsOnOnlyTheWorkflowsOwnConfigMapIsUsed) {
  // The tests' stamp secret, so that the watcher's side can be shown on a pod kcache admitted
  // whose ConfigMap was swapped for a planted one afterwards.
  const auto secretFile = std::filesystem::temp_directory_path() /
                          ("kcache-attack-stamp-" + std::to_string(::getpid()));
  AttackedServer server("offloaded_planted",
                        {"--read-offloaded-templates=true", "--watch-task-results=false",
                         "--stamp-secret-file=" + cmd_testing::writeTestStampSecret(secretFile)});
  ASSERT_TRUE(server.waitUntilReady());
  json pod = podFixture("argo-3.6-offloaded");
  server.kube().createObject("configmaps", plantedConfigMap(pod));

  auto client = server.client();
  const auto response = client->postReview(reviewOf(pod).dump());
  ASSERT_EQ(response.status, 200);
  EXPECT_FALSE(webhook::testing::applyAnswer(pod, response.body).hasPatch);
  EXPECT_EQ(server.metric(R"(kcache_offloaded_template_reads_total{result="failed"})"), 1);

  pod["metadata"]["labels"]["pipelines.kubeflow.org/cache_id"] = "";
  pod["metadata"]["annotations"]["pipelines.kubeflow.org/execution_cache_key"] =
      std::string(64, 'a');
  fakekube::stampAsAdmitted(pod);  // as if admitted: only the ConfigMap's owner can stop it now
  server.kube().createPod(pod);
  completeStep(server.kube(), pod);
  ASSERT_TRUE(kube::testing::waitFor(
      [&] {
        return server.metric(
                   R"(kcache_watcher_record_refusals_total{reason="template_not_owned"})") == 1;
      },
      seconds(30)))
      << server.log();
  EXPECT_EQ(server.metric("kcache_watcher_entries_recorded_total"), 0);
  std::filesystem::remove(secretFile);
}

TEST(AttackSecretsTest, APasswordOnTheCommandLineIsOverwrittenAndNeverLogged) {
  const std::string password = "hunter2-never-visible";
  AttackedServer server("password_argument", {"--db_password=" + password, "--log-level=info"});
  ASSERT_TRUE(server.waitUntilReady());  // PostgreSQL trusts local connections: still connects
  const std::string commandLine = server.commandLine();
  EXPECT_NE(commandLine.find("--db_password="), std::string::npos);
  EXPECT_EQ(commandLine.find(password), std::string::npos) << "visible in /proc/<pid>/cmdline";
  const std::string log = server.log();
  EXPECT_NE(log.find("given on the command line"), std::string::npos) << log;
  EXPECT_EQ(log.find(password), std::string::npos);
}

TEST(AttackSecretsTest, TheSeparateArgumentFormIsOverwrittenToo) {
  const std::string password = "hunter3-never-visible";
  AttackedServer server("password_separate", {"-db-password", password});
  ASSERT_TRUE(server.waitUntilReady());
  EXPECT_EQ(server.commandLine().find(password), std::string::npos);
  // Without the flag, no warning: the environment variable is the intended way.
  AttackedServer quiet("password_env", {}, {{"DBCONFIG_PASSWORD", password}});
  ASSERT_TRUE(quiet.waitUntilReady());
  EXPECT_EQ(quiet.log().find("given on the command line"), std::string::npos);
  EXPECT_EQ(quiet.commandLine().find(password), std::string::npos);
}

}  // namespace
}  // namespace kcache
