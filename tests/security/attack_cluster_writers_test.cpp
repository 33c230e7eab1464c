// Who may write the shared cache (issue 13). With --cache-scope=cluster an entry recorded in any
// namespace is replayed in every other, so a tenant recording a poisoned step would poison all.
// --cluster-scope-writers names the namespaces whose steps may be recorded: every namespace reads
// the shared entries, only those write them. Against the real cache-server: a non-writer's miss is
// not tagged, its tagged pod is refused by the watcher (counted), a writer's step is recorded and
// served everywhere, and the server refuses to start in cluster scope without the list.
#include "tests/security/attack_fixture.h"

namespace kcache::security_testing {
namespace {

class ClusterWritersAttackTest : public AttackTest {};

TEST_F(ClusterWritersAttackTest, OnlyTheWritersNamespacesRecordAndEveryNamespaceReads) {
  startServer("argo-3.6", {"--cache-scope", "cluster", "--cluster-scope-writers", "kubeflow"});

  // A tenant's miss is let through untouched: nothing tags it for recording.
  const auto untagged = admit(podOfRun(1, "team-a"));
  EXPECT_FALSE(untagged.hasPatch) << log();
  // The writer's miss carries the shared (template-only) key.
  const auto tagged = admit(podOfRun(2, "kubeflow"));
  ASSERT_TRUE(tagged.hasPatch) << log();
  const std::string sharedKey = tagged.patchedPod["metadata"]["annotations"][kKeyAnnotation];

  // The attack: the tenant tags its own pod by hand with the shared key and poisoned outputs.
  json forged = podOfRun(3, "team-a");
  forged["metadata"]["labels"][kCacheIdLabel] = "";
  forged["metadata"]["annotations"][kKeyAnnotation] = sharedKey;
  fake_.createPod(forged);
  runStep(forged, stepOutputs("poisoned"));
  ASSERT_TRUE(waitFor(
      [&] {
        return metric("kcache_watcher_record_refusals_total", "reason=\"namespace_not_writer\"") ==
               1;
      },
      std::chrono::seconds(60)))
      << log();
  EXPECT_TRUE(entries().empty());
  EXPECT_EQ(cacheIdOf(forged), "");

  // The writer's step is recorded, and read from every namespace.
  fake_.createPod(tagged.patchedPod);
  runStep(tagged.patchedPod, stepOutputs("0.93"));
  ASSERT_TRUE(waitForCacheId(podOfRun(2, "kubeflow"))) << log();
  ASSERT_EQ(entries().size(), 1u);
  EXPECT_EQ(entries()[0].namespaceName, "kubeflow");
  const auto hit = admit(podOfRun(4, "team-a"));
  ASSERT_TRUE(isEchoPod(hit.patchedPod)) << log();
  EXPECT_EQ(hitOutputs(hit), stepOutputs("0.93"));
}

TEST(ClusterWritersStartupTest, ClusterScopeWithoutWritersDoesNotStartAndSaysWhy) {
  const fs::path log =
      fs::temp_directory_path() / ("kcache-cluster-writers-" + std::to_string(::getpid()) + ".log");
  cmd_testing::CacheServerProcess server(
      {"--cache-scope=cluster", "--listen-port", std::to_string(test_support::findFreePort()),
       "--http-port", std::to_string(test_support::findFreePort()), "--watch=false"},
      "kcache-0", log);
  EXPECT_EQ(server.waitForExit(std::chrono::seconds(30)), 1);
  const std::string output = cmd_testing::readLog(log);
  EXPECT_NE(output.find("--cluster-scope-writers"), std::string::npos) << output;
  EXPECT_NE(output.find("every other"), std::string::npos) << output;
  fs::remove(log);
}

}  // namespace
}  // namespace kcache::security_testing
