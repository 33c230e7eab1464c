// Attack: forged recording (issue 13, attack 1). A namespace member cannot create Argo's pods
// through kcache's webhook by hand without leaving a trace, but can create pods, label them and
// patch their annotations. Each test plays one way of getting the watcher to record forged
// outputs under a victim step's key, against the real cache-server (webhook and watcher, the
// admission stamp secret kept in the database, no --stamp-secret-file), the fake API server and a
// real PostgreSQL, and checks that nothing was recorded, that the refusal was counted under its
// reason, and that the same step admitted through the webhook is recorded (so the watcher works).
//
// Not covered by the stamp, by design: the outputs. Argo's executor writes them after admission
// (annotation or task result), so a member of the namespace who can patch the pod's annotations
// can still change what a step it runs itself records (docs/security.md).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/execution_key.h"
#include "core/pod_template.h"
#include "store/cache_store.h"
#include "tests/cmd/cache_server_process.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using kube::testing::waitFor;

constexpr const char* kVictim = "team-b";
constexpr const char* kKeyAnnotation = "pipelines.kubeflow.org/execution_cache_key";
constexpr const char* kStampAnnotation = "kcache.kubeflow.org/admission-stamp";
constexpr const char* kStalenessAnnotation = "pipelines.kubeflow.org/max_cache_staleness";
constexpr const char* kOutputsAnnotation = "workflows.argoproj.io/outputs";
constexpr const char* kCacheIdLabel = "pipelines.kubeflow.org/cache_id";
constexpr const char* kCacheEnabledLabel = "pipelines.kubeflow.org/cache_enabled";
const std::string kForgedOutputs =
    R"({"parameters":[{"name":"train-accuracy","value":"FORGED"}],"exitCode":"0"})";
const std::string kTrueOutputs =
    R"({"parameters":[{"name":"train-accuracy","value":"0.93"}],"exitCode":"0"})";

store::EntryFilter withKey(const std::string& key) {
  store::EntryFilter filter;
  filter.key = key;
  return filter;
}

struct Scope {
  std::string name;  // --cache-scope
  core::KeyBinding binding;
};
// gtest names the parameter in test listings by this, rather than by its bytes.
void PrintTo(const Scope& scope, std::ostream* out) {
  *out << scope.name;
}

class ForgedRecordingTest : public ::testing::TestWithParam<Scope> {
 protected:
  void SetUp() override {
    directory_ = fs::temp_directory_path() /
                 ("kcache-attack-forged-" + std::to_string(::getpid()) + "-" + GetParam().name);
    fs::create_directories(directory_);
    auto& postgres = test_support::PostgresServer::shared();
    const std::string dsn = postgres.createFreshDatabase("forged_" + GetParam().name);
    cmd_testing::writeWebhookCertificate(directory_);
    cmd_testing::writeKubeconfig(directory_ / "kubeconfig", fake_);
    const uint16_t listenPort = test_support::findFreePort();
    httpPort_ = test_support::findFreePort();
    // The outputs come from the pod annotation (Argo <= 3.5), which any namespace member can
    // write: the easiest path for an attacker.
    server_ = std::make_unique<cmd_testing::CacheServerProcess>(
        std::vector<std::string>{
            "--db-host", "127.0.0.1", "--db-port", std::to_string(postgres.port()), "--db-user",
            "postgres", "--db-name", dsn.substr(dsn.rfind("dbname=") + 7), "--tls-dir",
            directory_.string(), "--listen-address", "127.0.0.1", "--listen-port",
            std::to_string(listenPort), "--http-port", std::to_string(httpPort_), "--kubeconfig",
            (directory_ / "kubeconfig").string(), "--cache-scope", GetParam().name,
            // Every namespace may write: the stamp alone must stop them.
            "--cluster-scope-writers=*", "--watch-task-results=false", "--argo-outputs=annotation"},
        "kcache-0", directory_ / "server.log");
    ASSERT_TRUE(waitFor(
        [&] {
          try {
            return webhook::testing::httpGet(httpPort_, "/readyz").status == 200;
          } catch (const std::exception&) {
            return false;
          }
        },
        std::chrono::seconds(60)))
        << log();
    ASSERT_TRUE(waitFor([&] { return fake_.lease("kcache", "kcache-watcher").has_value(); },
                        std::chrono::seconds(60)))
        << log();
    client_ = std::make_unique<webhook::testing::HttpsClient>(
        listenPort, std::vector<fs::path>{directory_ / "cert.pem"});
    store::StoreOptions options;
    options.dsn = dsn;
    store_ = std::make_unique<store::CacheStore>(options);
    std::ifstream in(fs::path(KCACHE_TEST_DATA_DIR) / "pods" / "argo-3.5.json");
    fixture_ = json::parse(in);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    fs::remove_all(directory_);
  }

  std::string log() const { return cmd_testing::readLog(directory_ / "server.log"); }

  // The victim's step as Argo creates it, before admission: pod `name` in `ns`.
  json stepPod(const std::string& ns, const std::string& name) const {
    json pod = fixture_;
    pod["metadata"]["name"] = name;
    pod["metadata"]["namespace"] = ns;
    return pod;
  }

  // The key of the step's template for a pod of `ns` in the scope in force.
  std::string keyIn(const std::string& ns) const {
    const auto found = core::findArgoTemplate(fixture_);
    return core::computeExecutionKey(found->argoTemplate, GetParam().binding, ns).value().hex();
  }

  // The pod as the API server stores it after kcache's webhook answered.
  json admitted(const json& pod) {
    const json review =
        webhook::testing::podCreateReview(pod, "system:serviceaccount:kubeflow:argo");
    const auto response = client_->postReview(review.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    const auto applied = webhook::testing::applyAnswer(pod, response.body);
    EXPECT_TRUE(applied.hasPatch) << response.body << log();
    EXPECT_TRUE(applied.patchedPod["metadata"]["annotations"].contains(kStampAnnotation));
    return applied.patchedPod;
  }

  // A pod tagged by hand: what the webhook would add, except the stamp.
  static json taggedByHand(json pod, const std::string& key) {
    pod["metadata"]["labels"][kCacheIdLabel] = "";
    pod["metadata"]["annotations"][kKeyAnnotation] = key;
    return pod;
  }

  // The kubelet and Argo's executor once `main` exited 0, reporting `outputs`.
  void succeed(const json& pod, const std::string& outputs) {
    fake_.modifyPod(pod["metadata"]["namespace"], pod["metadata"]["name"], [&](json& stored) {
      stored["metadata"]["annotations"][kOutputsAnnotation] = outputs;
      stored["status"] = json::parse(R"({"phase": "Succeeded", "containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 0,
          "startedAt": "2026-11-22T08:00:00Z", "finishedAt": "2026-11-22T08:03:20Z"}}}]})");
    });
  }

  double refusals(const std::string& reason) {
    const std::string series = "kcache_watcher_record_refusals_total{reason=\"" + reason + "\"} ";
    std::istringstream lines(webhook::testing::httpGet(httpPort_, "/metrics").body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(series, 0) == 0) return std::stod(line.substr(series.size()));
    }
    return -1;  // not exposed at all: a failure of its own
  }

  // Waits for the watcher to refuse one more pod for `reason`, then checks that no entry exists
  // under `key` and that the pod was not labelled.
  void expectRefused(const json& pod, const std::string& reason, const std::string& key) {
    EXPECT_TRUE(waitFor([&] { return refusals(reason) >= 1; }, std::chrono::seconds(60)))
        << reason << "\n"
        << log();
    EXPECT_EQ(refusals(reason), 1) << "counted once per pod";
    EXPECT_EQ(store_->countEntries(withKey(key)), 0) << log();
    const auto stored = fake_.pod(pod["metadata"]["namespace"], pod["metadata"]["name"]);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->at("metadata").at("labels").value(kCacheIdLabel, ""), "");
  }

  // The step run by Argo through the webhook is recorded with its true outputs: the watcher is
  // alive, and the refusals above are refusals, not a watcher that records nothing.
  void expectAdmittedStepRecorded(const std::string& ns) {
    const json pod = admitted(stepPod(ns, "legitimate-step-1"));
    fake_.createPod(pod);
    succeed(pod, kTrueOutputs);
    ASSERT_TRUE(waitFor(
        [&] {
          const auto stored = fake_.pod(ns, "legitimate-step-1");
          return stored && !stored->at("metadata").at("labels").value(kCacheIdLabel, "").empty();
        },
        std::chrono::seconds(60)))
        << log();
    const auto entries = store_->listEntries(withKey(keyIn(ns)), 0, 10);
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_NE(entries[0].executionOutput.find("0.93"), std::string::npos);
    EXPECT_EQ(entries[0].executionOutput.find("FORGED"), std::string::npos);
  }

  fakekube::FakeKubeServer fake_;
  fs::path directory_;
  uint16_t httpPort_ = 0;
  std::unique_ptr<cmd_testing::CacheServerProcess> server_;
  std::unique_ptr<webhook::testing::HttpsClient> client_;
  std::unique_ptr<store::CacheStore> store_;
  json fixture_;
};

TEST_P(ForgedRecordingTest, APodTheWebhookNeverSawIsNotRecorded) {
  // No cache_enabled label, so the webhook's selector never sent it: labelled cache_id "" and
  // annotated with the victim's key by hand, with the victim's template (the key checks out).
  json pod = taggedByHand(stepPod(kVictim, "forged-never-admitted"), keyIn(kVictim));
  pod["metadata"]["labels"].erase(kCacheEnabledLabel);
  fake_.createPod(pod);
  succeed(pod, kForgedOutputs);
  expectRefused(pod, "not_cache_enabled", keyIn(kVictim));
  expectAdmittedStepRecorded(kVictim);
}

TEST_P(ForgedRecordingTest, APodAdmittedWhileTheWebhookWasDownIsNotRecorded) {
  // failurePolicy Ignore let it through untouched; the attacker tags it like the webhook would.
  const json pod = taggedByHand(stepPod(kVictim, "forged-webhook-down"), keyIn(kVictim));
  fake_.createPod(pod);
  succeed(pod, kForgedOutputs);
  expectRefused(pod, "stamp_missing", keyIn(kVictim));
  expectAdmittedStepRecorded(kVictim);
}

TEST_P(ForgedRecordingTest, AStalenessPatchedAfterAdmissionIsNotRecorded) {
  // Admitted properly, then P1000Y so the forged entry would never expire.
  json pod = admitted(stepPod(kVictim, "forged-staleness"));
  fake_.createPod(pod);
  fake_.modifyPod(kVictim, "forged-staleness", [](json& stored) {
    stored["metadata"]["annotations"][kStalenessAnnotation] = "P1000Y";
  });
  succeed(pod, kForgedOutputs);
  expectRefused(pod, "stamp_invalid", keyIn(kVictim));
  expectAdmittedStepRecorded(kVictim);
}

TEST_P(ForgedRecordingTest, AStampCopiedFromAnotherAdmittedPodIsNotRecorded) {
  // The stamp of a properly admitted pod of the same step, copied onto a hand-made one.
  const json lender = admitted(stepPod(kVictim, "lender"));
  json pod = taggedByHand(stepPod(kVictim, "forged-copied-stamp"), keyIn(kVictim));
  pod["metadata"]["annotations"][kStampAnnotation] =
      lender["metadata"]["annotations"][kStampAnnotation];
  fake_.createPod(pod);
  succeed(pod, kForgedOutputs);
  expectRefused(pod, "stamp_invalid", keyIn(kVictim));
  expectAdmittedStepRecorded(kVictim);
}

TEST_P(ForgedRecordingTest, AKeyPatchedAfterAdmissionIsNotRecorded) {
  // Admitted as the attacker's own step, then annotated with the victim step's key: its own
  // template does not give it.
  json own = stepPod(kVictim, "forged-patched-key");
  for (auto& container : own["spec"]["containers"]) {
    for (auto& env : container["env"]) {
      if (env["name"] == "ARGO_TEMPLATE") {
        json argoTemplate = json::parse(env["value"].get<std::string>());
        argoTemplate["container"]["args"] = json::array({"attacker"});
        env["value"] = argoTemplate.dump();
      }
    }
  }
  json pod = admitted(own);
  fake_.createPod(pod);
  fake_.modifyPod(kVictim, "forged-patched-key", [&](json& stored) {
    stored["metadata"]["annotations"][kKeyAnnotation] = keyIn(kVictim);
  });
  succeed(pod, kForgedOutputs);
  expectRefused(pod, "key_mismatch", keyIn(kVictim));
  expectAdmittedStepRecorded(kVictim);
}

TEST_P(ForgedRecordingTest, AnotherNamespaceCannotWriteTheVictimsEntry) {
  if (GetParam().binding == core::KeyBinding::kNamespaceBound) {
    // The victim's template, admitted in the attacker's namespace and annotated afterwards with
    // the victim's namespace-bound key.
    json pod = admitted(stepPod("team-a", "forged-other-namespace"));
    fake_.createPod(pod);
    fake_.modifyPod("team-a", "forged-other-namespace", [&](json& stored) {
      stored["metadata"]["annotations"][kKeyAnnotation] = keyIn(kVictim);
    });
    succeed(pod, kForgedOutputs);
    expectRefused(pod, "key_mismatch", keyIn(kVictim));
  } else {
    // Cluster scope shares the template-only key with every tenant: a pod of a namespace the
    // webhook excludes (so never admitted) carries the victim's template and key, with
    // cache_enabled, and is refused for want of a stamp.
    const json pod =
        taggedByHand(stepPod("excluded", "forged-excluded-namespace"), keyIn("excluded"));
    ASSERT_EQ(keyIn("excluded"), keyIn(kVictim)) << "cluster scope shares the key";
    fake_.createPod(pod);
    succeed(pod, kForgedOutputs);
    expectRefused(pod, "stamp_missing", keyIn(kVictim));
  }
  expectAdmittedStepRecorded(kVictim);
}

INSTANTIATE_TEST_SUITE_P(Scopes, ForgedRecordingTest,
                         ::testing::Values(Scope{"namespace", core::KeyBinding::kNamespaceBound},
                                           Scope{"cluster", core::KeyBinding::kTemplateOnly}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace kcache
