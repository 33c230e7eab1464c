// Attack 4 of issue 13: an adopted forgery. On a hit delivered as a WorkflowTaskResult, creating it
// may meet a 409 when one of that name exists. kcache used to adopt it when it merely carried its
// replay label; every Argo executor in the namespace may create task results, so one could
// pre-create the victim step's task result with that label and forged outputs, and Argo would
// read them as the cached step's. Now only a task result equal to what kcache would create
// (outputs, owner, labels) is adopted; anything else lets the step run (a miss, never a denial).
#include "tests/security/attack_fixture.h"

namespace kcache::security_testing {
namespace {

class AdoptionAttackTest : public AttackTest {
 protected:
  void SetUp() override {
    startServer("argo-3.6", {"--argo-outputs", "taskresult"});
    entryId_ = runLegitimately(1, stepOutputs("0.93"));
    ASSERT_FALSE(entryId_.empty());
  }

  // The task result kcache creates for run `run`'s hit, as the legitimate path shows it.
  json taskResultOf(int run) const {
    const json pod = podOfRun(run);
    return {{"apiVersion", "argoproj.io/v1alpha1"},
            {"kind", "WorkflowTaskResult"},
            {"metadata",
             {{"name", nodeIdOf(pod)},
              {"namespace", "team-a"},
              {"labels",
               {{kWorkflowLabel, pod["metadata"]["labels"][kWorkflowLabel]},
                {kCompletedLabel, "true"},
                {"kcache.kubeflow.org/replayed-from", entryId_}}},
              {"ownerReferences", json::array({{{"apiVersion", "argoproj.io/v1alpha1"},
                                                {"kind", "Workflow"},
                                                {"name", pod["metadata"]["labels"][kWorkflowLabel]},
                                                {"uid", workflowUid(run)}}})}}},
            {"outputs", stepOutputs("0.93")}};
  }

  // Pre-creates `forgery` for run `run`, then admits that run: the step must run (tagged for
  // recording, not the echo pod) and the forgery must stay as the attacker left it.
  void expectForgeryNotAdopted(int run, const json& forgery) {
    const json created = fake_.createObject(kTaskResults, forgery);
    const auto answer = admit(podOfRun(run));
    EXPECT_TRUE(answer.allowed);
    EXPECT_FALSE(isEchoPod(answer.patchedPod)) << log();
    EXPECT_EQ(answer.patchedPod["metadata"]["labels"][kCacheIdLabel], "") << "a miss";
    const auto stored = fake_.object(kTaskResults, "team-a", nodeIdOf(podOfRun(run)));
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(*stored, created) << "kcache neither adopted nor changed it";
  }

  std::string entryId_;
};

TEST_F(AdoptionAttackTest, ALegitimateRepeatedAdmissionAdoptsKcachesOwnTaskResult) {
  // The legitimate path: the controller sends the same pod twice; the second create meets kcache's
  // own task result, which is adopted, so both answers are the echo pod.
  const json pod = podOfRun(2);
  ASSERT_TRUE(isEchoPod(admit(pod).patchedPod)) << log();
  const auto created = fake_.object(kTaskResults, "team-a", nodeIdOf(pod));
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->at("outputs"), taskResultOf(2)["outputs"]);
  EXPECT_EQ(created->at("metadata").at("labels"), taskResultOf(2)["metadata"]["labels"]);
  EXPECT_TRUE(isEchoPod(admit(pod).patchedPod)) << log();
  EXPECT_EQ(metric("kcache_task_results_total", "result=\"already_present\""), 1);
}

TEST_F(AdoptionAttackTest, ForgedOutputsUnderKcachesLabelAreNotAdopted) {
  json forgery = taskResultOf(2);
  forgery["outputs"] = stepOutputs("poisoned");
  expectForgeryNotAdopted(2, forgery);
  EXPECT_EQ(metric("kcache_task_results_total", "result=\"already_present\""), 0);
  EXPECT_EQ(metric("kcache_task_results_total", "result=\"failed\""), 1);
}

TEST_F(AdoptionAttackTest, AnotherOwnerOrExtraLabelsAreNotAdopted) {
  json otherOwner = taskResultOf(2);
  otherOwner["metadata"]["ownerReferences"][0]["uid"] = workflowUid(9);
  expectForgeryNotAdopted(2, otherOwner);
  json extraLabel = taskResultOf(3);
  extraLabel["metadata"]["labels"]["attacker"] = "was-here";
  expectForgeryNotAdopted(3, extraLabel);
  json otherEntry = taskResultOf(4);
  otherEntry["metadata"]["labels"]["kcache.kubeflow.org/replayed-from"] = "999";
  expectForgeryNotAdopted(4, otherEntry);
  EXPECT_EQ(metric("kcache_task_results_total", "result=\"already_present\""), 0);
}

}  // namespace
}  // namespace kcache::security_testing
