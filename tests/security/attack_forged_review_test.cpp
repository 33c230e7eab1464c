// Attack 3 of issue 13: forged admission reviews. /mutate answers whoever reaches it; without
// client authentication a pod anywhere in the cluster can post a review claiming namespace B and,
// on a hit, read B's outputs, make kcache create a WorkflowTaskResult in B (a confused deputy), and
// make kcache read B's Workflows (and, for offloaded templates, ConfigMaps) by name. With
// --client-ca-file only kube-apiserver's certificate gets past the TLS handshake. The tests run
// the same forged review against both configurations, so the one that must do no harm is shown
// to be able to: without client authentication it does exactly the harm described.
#include "tests/security/attack_fixture.h"

namespace kcache::security_testing {
namespace {

using webhook::testing::ClientCertificate;

constexpr const char* kVictim = "team-b";

// Requests the webhook made on the attacker's behalf: anything but the watcher's lists, watches
// and Lease renewals (which run all along, whoever posts reviews).
std::vector<fakekube::ReceivedRequest> deputyRequests(const fakekube::FakeKubeServer& fake) {
  std::vector<fakekube::ReceivedRequest> found;
  for (const auto& request : fake.requests()) {
    const bool lease = request.path.find("/leases") != std::string::npos;
    const bool watcherRead = request.method == "GET" &&
                             request.path.find("/configmaps") == std::string::npos &&
                             request.path.find("/workflows/") == std::string::npos;
    if (!lease && !watcherRead) found.push_back(request);
  }
  return found;
}

std::string describe(const std::vector<fakekube::ReceivedRequest>& requests) {
  std::string text;
  for (const auto& request : requests) text += request.method + " " + request.path + "\n";
  return text;
}

class ForgedReviewAttackTest : public AttackTest {
 protected:
  // The victim's step recorded in B, then the attacker's review of B's step: a pod without owner
  // references, so a hit would also make kcache read B's Workflow for its uid.
  json victimRecordedAndForgedPod() {
    EXPECT_FALSE(runLegitimately(1, stepOutputs("team-b's secret"), kVictim).empty());
    json forged = podOfRun(2, kVictim);
    forged["metadata"].erase("ownerReferences");
    fake_.createObject("workflows",
                       {{"apiVersion", "argoproj.io/v1alpha1"},
                        {"kind", "Workflow"},
                        {"metadata", {{"name", "pipeline-run2"}, {"namespace", kVictim}}}});
    fake_.clearRequests();
    return forged;
  }
};

TEST_F(ForgedReviewAttackTest, WithClientAuthenticationAForgedReviewGetsOnlyTheTlsAlert) {
  webhook::testing::TempDir keys;
  const fs::path ca = keys.path() / "client-ca.pem", caKey = keys.path() / "client-ca.key";
  webhook::testing::writeCertificateAuthority(ca, caKey, "kube-apiserver-client-ca");
  ClientCertificate apiServer{keys.path() / "apiserver.pem", keys.path() / "apiserver.key"};
  webhook::testing::writeSignedCertificate(apiServer.certFile, apiServer.keyFile, "kube-apiserver",
                                           ca, caKey);
  // A client certificate from a CA the server does not trust.
  const fs::path otherCa = keys.path() / "other-ca.pem", otherKey = keys.path() / "other-ca.key";
  webhook::testing::writeCertificateAuthority(otherCa, otherKey, "attacker-ca");
  ClientCertificate attacker{keys.path() / "attacker.pem", keys.path() / "attacker.key"};
  webhook::testing::writeSignedCertificate(attacker.certFile, attacker.keyFile, "kube-apiserver",
                                           otherCa, otherKey);
  apiServerCertificate_ = apiServer;
  startServer("argo-3.6", {"--argo-outputs", "taskresult", "--client-ca-file", ca.string()});
  const json forged = victimRecordedAndForgedPod();

  EXPECT_FALSE(postAsAnyone(forged, kArgoController).has_value()) << "no certificate";
  EXPECT_FALSE(postAsAnyone(forged, kArgoController, attacker).has_value()) << "untrusted CA";
  EXPECT_FALSE(fake_.object(kTaskResults, kVictim, nodeIdOf(forged)).has_value());
  EXPECT_EQ(describe(deputyRequests(fake_)), "") << "nothing read or created for the attacker";

  // kube-apiserver, presenting its certificate, still gets the hit (and the task result).
  const auto hit = admit(podOfRun(3, kVictim));
  EXPECT_TRUE(isEchoPod(hit.patchedPod)) << log();
  EXPECT_TRUE(fake_.object(kTaskResults, kVictim, nodeIdOf(podOfRun(3, kVictim))).has_value());
}

TEST_F(ForgedReviewAttackTest, WithoutClientAuthenticationAForgedReviewIsAnsweredAsAnyOther) {
  // What an unauthenticated webhook exposes (docs/security.md): this is the harm client
  // authentication prevents, shown so that the test above is known to be able to fail.
  startServer("argo-3.6", {"--argo-outputs", "taskresult"});
  const json forged = victimRecordedAndForgedPod();
  const auto stolen = postAsAnyone(forged, kArgoController);
  ASSERT_TRUE(stolen.has_value());
  EXPECT_EQ(hitOutputs(*stolen), stepOutputs("team-b's secret")) << "B's outputs are read";
  const auto deputy = fake_.object(kTaskResults, kVictim, nodeIdOf(forged));
  ASSERT_TRUE(deputy.has_value()) << "kcache created a task result in B for the attacker";
  EXPECT_EQ(deputy->at("metadata").at("labels").at(kCompletedLabel), "true");
  const auto requests = deputyRequests(fake_);
  EXPECT_EQ(requests.size(), 2u) << describe(requests);  // B's Workflow read, the task result made

  // What it cannot do: write the cache. A review never records anything (only the watcher does,
  // from pods that exist), so a forged miss leaves the store as it was and creates nothing.
  const auto before = entries();
  fake_.clearRequests();
  ASSERT_TRUE(postAsAnyone(podOfRun(4, "team-c"), kArgoController).has_value());
  EXPECT_EQ(entries().size(), before.size());
  EXPECT_EQ(describe(deputyRequests(fake_)), "");
}

TEST_F(ForgedReviewAttackTest, TrustedCreatorsStopAReviewThatDoesNotClaimTheController) {
  // --trusted-creators limits whose pods kcache acts on. Over an unauthenticated port the name is
  // the caller's claim, so it only stops a caller that does not know to claim the controller's
  // name: client authentication is what makes userInfo trustworthy.
  startServer("argo-3.6", {"--argo-outputs", "taskresult", "--trusted-creators", kArgoController});
  const json forged = victimRecordedAndForgedPod();
  const auto answer = postAsAnyone(forged, "system:serviceaccount:team-a:default");
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(answer->hasPatch) << "no outputs, not tagged";
  EXPECT_FALSE(fake_.object(kTaskResults, kVictim, nodeIdOf(forged)).has_value());
  EXPECT_EQ(describe(deputyRequests(fake_)), "");
  EXPECT_EQ(metric("kcache_admission_skips_total", "reason=\"untrusted_creator\""), 1);
  // Claiming the controller's name gets through: the remaining exposure without client auth.
  const auto claimed = postAsAnyone(forged, kArgoController);
  ASSERT_TRUE(claimed.has_value());
  EXPECT_TRUE(isEchoPod(claimed->patchedPod));
}

}  // namespace
}  // namespace kcache::security_testing
