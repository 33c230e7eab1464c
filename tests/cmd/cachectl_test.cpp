// cachectl end to end, in-process, against a real PostgreSQL: what an operator types and reads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cmd/cachectl/app.h"
#include "store/cache_store.h"
#include "tests/support/postgres_server.h"

namespace kcache::cachectl {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Result {
  int exitCode;
  std::string out;
  std::string err;
};

class CachectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& server = test_support::PostgresServer::shared();
    const std::string dsn = server.createFreshDatabase("cachectl");
    database_ = dsn.substr(dsn.rfind("dbname=") + 7);
    port_ = std::to_string(server.port());
    directory_ = fs::temp_directory_path() /
                 ("cachectl-test-" + std::to_string(::getpid()) + "-" + database_);
    fs::create_directories(directory_);
    ::unsetenv("MAXIMUM_CACHE_STALENESS");
    ::unsetenv("DEFAULT_CACHE_STALENESS");
  }
  void TearDown() override { fs::remove_all(directory_); }

  // cachectl in this process; `environment` is set for the run only.
  Result run(std::vector<std::string> arguments, bool withDatabase = true,
             const std::map<std::string, std::string>& environment = {}) {
    for (const auto& [name, value] : environment) ::setenv(name.c_str(), value.c_str(), 1);
    if (withDatabase) {
      for (const auto& flag : {"--db-host", "127.0.0.1", "--db-port", port_.c_str(), "--db-user",
                               "postgres", "--db-name", database_.c_str()}) {
        arguments.push_back(flag);
      }
    }
    std::ostringstream out, err;
    auto* oldOut = std::cout.rdbuf(out.rdbuf());
    auto* oldErr = std::cerr.rdbuf(err.rdbuf());
    const int code = runCachectl(arguments);
    std::cout.rdbuf(oldOut);
    std::cerr.rdbuf(oldErr);
    for (const auto& entry : environment) ::unsetenv(entry.first.c_str());
    return {code, out.str(), err.str()};
  }

  std::string writeFile(const std::string& name, const std::string& content) {
    const auto path = directory_ / name;
    std::ofstream(path) << content;
    return path.string();
  }

  // The Argo 3.5 fixture's pod after the miss patch and a successful run.
  std::string completedPod(const std::string& namespaceName, const std::string& key) {
    std::ifstream in(std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json");
    json pod = json::parse(in)["request"]["object"];
    pod["metadata"]["namespace"] = namespaceName;
    pod["metadata"]["labels"]["pipelines.kubeflow.org/cache_id"] = "";
    pod["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true";
    pod["metadata"]["labels"]["pipelines.kubeflow.org/metadata_execution_id"] = "7";
    pod["metadata"]["annotations"]["pipelines.kubeflow.org/execution_cache_key"] = key;
    pod["metadata"]["annotations"]["workflows.argoproj.io/outputs"] =
        R"({"parameters":[{"name":"accuracy","value":"0.93"}],"exitCode":"0"})";
    pod["status"] = {{"phase", "Succeeded"},
                     {"containerStatuses",
                      {{{"name", "main"},
                        {"state",
                         {{"terminated",
                           {{"exitCode", 0},
                            {"startedAt", "2026-01-01T10:00:00Z"},
                            {"finishedAt", "2026-01-01T10:05:00Z"}}}}}}}}};
    return writeFile("completed-" + namespaceName + ".json", pod.dump());
  }

  // The Argo 3.5 fixture's key, bound to `namespaceName` (namespace scope), or template-only
  // (cluster scope), as `cachectl key` prints it.
  std::string fixtureKey(const std::string& namespaceName = "team-a",
                         const std::string& scope = "namespace") {
    const auto result =
        run({"key", "--pod", std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json",
             "--namespace", namespaceName, "--cache-scope", scope},
            false);
    EXPECT_EQ(result.exitCode, 0) << result.err;
    return result.out.substr(0, 64);
  }

  std::string database_, port_;
  fs::path directory_;
};

TEST_F(CachectlTest, KeyOfAYamlPodMatchesTheVectors) {
  const std::string pod = std::string(KCACHE_TEST_DATA_DIR) + "/pods/kfp-v1-step.yaml";
  // Namespace scope (the default): bound to the pod's own namespace, as Kubeflow 2.18 computes it
  // (namespaced-keys.jsonl, kfp18_add_pod_env_echo@kubeflow-user-example-com).
  const auto bound = run({"key", "--pod", pod}, false);
  EXPECT_EQ(bound.exitCode, 0) << bound.err;
  EXPECT_EQ(bound.out, "7765d92d54558ec7fb2463f17517fd9005a2d829487f287680aa74efc59a4fa3\n");
  // --namespace overrides the pod's namespace.
  EXPECT_EQ(run({"key", "--pod", pod, "--namespace", "team-a"}, false).out,
            "8e2ae6728bb187de58a6931f8fbff012fcddb63c10339a3167d3213af1e77fcb\n");
  // Cluster scope: the template-only key of Kubeflow before 2.18 (keys.jsonl).
  EXPECT_EQ(run({"key", "--pod", pod, "--cache-scope", "cluster"}, false).out,
            "abbf751c99cdcdcfb6995caa5b78f4a2e214f32a9e45e0181752c414fd24ec7d\n");
}

TEST_F(CachectlTest, KeyOfEveryNamespacedVector) {
  std::ifstream in(std::string(KCACHE_TEST_DATA_DIR) + "/namespaced-keys.jsonl");
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    const json record = json::parse(line);
    // Records with template_hex carry raw bytes, not text: the core tests cover those.
    if (!record.contains("template")) continue;
    const std::string file = writeFile("template.json", record["template"].get<std::string>());
    const auto bound = run({"key", "--template", file, "--namespace", record["namespace"]}, false);
    ASSERT_EQ(bound.exitCode, 0) << record["name"] << ": " << bound.err;
    EXPECT_EQ(bound.out, record["key"].get<std::string>() + "\n") << record["name"];
    // With --canonical the second line is exactly the bytes Kubeflow 2.18 hashes.
    const auto canonical =
        run({"key", "--template", file, "--namespace", record["namespace"], "--canonical"}, false);
    EXPECT_EQ(canonical.out, record["key"].get<std::string>() + "\n" +
                                 record["canonical"].get<std::string>() + "\n")
        << record["name"];
    ++checked;
  }
  EXPECT_GE(checked, 200);
  // Without a namespace, --template gives the template-only key, with a note saying so.
  const std::string file = writeFile("template.json", R"({"container":{"image":"python:3.11"}})");
  const auto templateOnly = run({"key", "--template", file}, false);
  EXPECT_EQ(templateOnly.exitCode, 0);
  EXPECT_NE(templateOnly.err.find("template-only key"), std::string::npos) << templateOnly.err;
  EXPECT_EQ(templateOnly.out,
            run({"key", "--template", file, "--cache-scope", "cluster"}, false).out);
}

TEST_F(CachectlTest, KeyFailuresAreOneClearLine) {
  const auto broken = run({"key", "--template", writeFile("t.json", "{\"container\":")}, false);
  EXPECT_EQ(broken.exitCode, 1);
  EXPECT_EQ(broken.out, "");
  EXPECT_NE(broken.err.find("has no execution key (json_syntax)"), std::string::npos) << broken.err;
  EXPECT_EQ(std::count(broken.err.begin(), broken.err.end(), '\n'), 1) << broken.err;

  const auto noTemplate = run(
      {"key", "--pod", writeFile("p.json", R"({"spec":{"containers":[{"name":"main"}]}})")}, false);
  EXPECT_EQ(noTemplate.exitCode, 1);
  EXPECT_NE(noTemplate.err.find("no ARGO_TEMPLATE"), std::string::npos) << noTemplate.err;

  const auto missing = run({"key", "--template", (directory_ / "absent.json").string()}, false);
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;

  EXPECT_NE(run({"key"}, false).exitCode, 0);
}

TEST_F(CachectlTest, RecordThenExplainStatsListShow) {
  const std::string key = fixtureKey();
  const std::string review = std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json";

  const auto before = run({"explain", "--pod", review});
  EXPECT_EQ(before.exitCode, 0) << before.err;
  EXPECT_NE(before.out.find("considered: yes"), std::string::npos) << before.out;
  EXPECT_NE(before.out.find("MISS, no entry with this key"), std::string::npos) << before.out;

  const auto recorded = run({"record", "--pod", completedPod("team-a", key)});
  ASSERT_EQ(recorded.exitCode, 0) << recorded.err;
  EXPECT_NE(recorded.out.find("recorded entry 1 for key " + key), std::string::npos)
      << recorded.out;
  EXPECT_NE(recorded.out.find("ran 5m"), std::string::npos) << recorded.out;

  const auto after = run({"explain", "--pod", review});
  EXPECT_NE(after.out.find("result: HIT, entry 1"), std::string::npos) << after.out;

  const auto stats = run({"stats", "--json"});
  ASSERT_EQ(stats.exitCode, 0) << stats.err;
  const json parsed = json::parse(stats.out);
  EXPECT_EQ(parsed["entries"], 1);
  EXPECT_EQ(parsed["namespaces"][0]["namespace"], "team-a");

  const auto list = run({"list", "--namespace", "team-a"});
  EXPECT_NE(list.out.find(key.substr(0, 12)), std::string::npos) << list.out;
  EXPECT_EQ(run({"list", "--namespace", "team-b"}).out, "no entries match\n");

  const auto show = run({"show", "1"});
  EXPECT_EQ(show.exitCode, 0) << show.err;
  EXPECT_NE(show.out.find("\"value\": \"0.93\""), std::string::npos) << show.out;  // pretty-printed
  EXPECT_NE(show.out.find("execution id 7"), std::string::npos) << show.out;
  EXPECT_EQ(run({"show", "99"}).exitCode, 1);
}

TEST_F(CachectlTest, ExplainNamesTheRuleThatPreventsReuse) {
  ASSERT_EQ(run({"record", "--pod", completedPod("team-b", fixtureKey("team-b"))}).exitCode, 0);
  const std::string review = std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json";
  // team-b's entry has team-b's key: team-a's pod has another one.
  const auto otherTenant = run({"explain", "--pod", review});
  EXPECT_NE(otherTenant.out.find("execution key: " + fixtureKey("team-a") + " (namespace-bound"),
            std::string::npos)
      << otherTenant.out;
  EXPECT_NE(otherTenant.out.find("the other key: " + fixtureKey("team-a", "cluster")),
            std::string::npos)
      << otherTenant.out;
  EXPECT_NE(otherTenant.out.find("MISS, no entry with this key"), std::string::npos)
      << otherTenant.out;
  const auto otherScope = run({"explain", "--pod", review, "--cache-scope", "cluster"});
  EXPECT_NE(otherScope.out.find("MISS, no entry with this key"), std::string::npos)
      << otherScope.out;
  ASSERT_EQ(run({"record", "--pod", completedPod("team-b", fixtureKey("team-b", "cluster")),
                 "--cache-scope", "cluster"})
                .exitCode,
            0);
  EXPECT_NE(run({"explain", "--pod", review, "--cache-scope", "cluster"}).out.find("result: HIT"),
            std::string::npos);
  // In namespace scope the cluster entry is named, with the scope that would reuse it.
  const auto namespaceScope = run({"explain", "--pod", review});
  EXPECT_NE(namespaceScope.out.find("has the other key: it is reused only with "
                                    "--cache-scope=cluster"),
            std::string::npos)
      << namespaceScope.out;

  const auto skipped =
      run({"explain", "--pod",
           std::string(KCACHE_TEST_DATA_DIR) + "/admission/skip-cache-not-enabled-v1.json"});
  EXPECT_EQ(skipped.exitCode, 0) << skipped.err;
  EXPECT_NE(skipped.out.find("considered: no, skipped"), std::string::npos) << skipped.out;
}

TEST_F(CachectlTest, ExplainNamesEverySkipRule) {
  const std::map<std::string, std::string> fixtures = {
      {"skip-cache-not-enabled-v1.json", "cache_not_enabled"},
      {"skip-kfp-v2-v1.json", "kfp_v2"},
      {"skip-kube-system-v1beta1.json", "system_namespace"},
      {"skip-no-template-v1.json", "no_argo_template"},
      {"skip-staleness-zero-v1.json", "staleness_disabled"},
      {"skip-tfx-entrypoint-v1.json", "tfx"},
      {"skip-tfx-label-v1.json", "tfx"}};
  for (const auto& [fixture, reason] : fixtures) {
    const auto result =
        run({"explain", "--pod", std::string(KCACHE_TEST_DATA_DIR) + "/admission/" + fixture});
    EXPECT_EQ(result.exitCode, 0) << fixture << ": " << result.err;
    EXPECT_NE(result.out.find("considered: no, skipped (" + reason + ")"), std::string::npos)
        << fixture << ":\n"
        << result.out;
  }
  // A template offloaded to a ConfigMap has no key: let through, and said so.
  const auto offloaded =
      run({"explain", "--pod",
           std::string(KCACHE_TEST_DATA_DIR) + "/admission/skip-configmap-v1.json"});
  EXPECT_NE(offloaded.out.find("considered: no"), std::string::npos) << offloaded.out;
}

TEST_F(CachectlTest, ExplainReadsAnOffloadedTemplateFromItsConfigMap) {
  const std::string pods = std::string(KCACHE_TEST_DATA_DIR) + "/pods/";
  // As cache-server by default: skipped, no ConfigMap needed.
  const auto byDefault = run({"explain", "--pod", pods + "argo-3.6-offloaded.json"});
  EXPECT_NE(byDefault.out.find("skipped (template_offloaded)"), std::string::npos) << byDefault.out;
  const auto withoutConfigMap =
      run({"explain", "--read-offloaded-templates=true", "--pod", pods + "argo-3.6-offloaded.json"},
          false);
  EXPECT_NE(withoutConfigMap.exitCode, 0);
  EXPECT_NE(withoutConfigMap.err.find("--configmap"), std::string::npos) << withoutConfigMap.err;

  const auto keyOfOffloaded = run({"key", "--pod", pods + "argo-3.6-offloaded.json"}, false);
  EXPECT_EQ(keyOfOffloaded.exitCode, 1);
  EXPECT_NE(keyOfOffloaded.err.find("ConfigMap named after the pod"), std::string::npos)
      << keyOfOffloaded.err;

  // The key is the one of the same template inline (the 3.6 fixture carries it on `init`).
  const auto inlineKey = run({"key", "--pod", pods + "argo-3.6.json"}, false);
  ASSERT_EQ(inlineKey.exitCode, 0) << inlineKey.err;
  const auto explained =
      run({"explain", "--read-offloaded-templates=true", "--pod", pods + "argo-3.6-offloaded.json",
           "--configmap", pods + "argo-3.6-offloaded.configmap.json"});
  EXPECT_EQ(explained.exitCode, 0) << explained.err;
  EXPECT_NE(explained.out.find("execution key: " + inlineKey.out.substr(0, 64)), std::string::npos)
      << explained.out;
}

TEST_F(CachectlTest, ExplainNamesEveryMissReason) {
  const std::string key = fixtureKey();
  json review =
      json::parse(std::ifstream(std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json"));
  review["request"]["object"]["metadata"]["annotations"]
        ["pipelines.kubeflow.org/max_cache_staleness"] = "P1D";
  const std::string oneDayPod = writeFile("one-day.json", review.dump());

  auto& server = test_support::PostgresServer::shared();
  store::StoreOptions options;
  options.dsn = server.connectionString(database_);
  store::CacheStore store(options);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  store::NewEntry old;
  old.key = key;
  old.namespaceName = "team-a";
  old.podName = "train-pod";
  old.executionOutput = R"({"workflows.argoproj.io/outputs":"{}"})";
  old.recordedAtInSec = now - 3 * 86400;
  store.record(store::CacheScope::kNamespace, old);

  const auto staleForPod = run({"explain", "--pod", oneDayPod});
  EXPECT_NE(staleForPod.out.find("stale for this pod: 3d"), std::string::npos) << staleForPod.out;
  EXPECT_NE(staleForPod.out.find("(from annotation)"), std::string::npos) << staleForPod.out;

  old.maxCacheStaleness = 86400;
  old.recordedAtInSec = now - 2 * 86400;
  store.record(store::CacheScope::kNamespace, old);  // the same pod, newer: replaces the entry
  const std::string review35 = std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json";
  const auto staleByOwn = run({"explain", "--pod", review35});
  EXPECT_NE(staleByOwn.out.find("stale by the staleness it was recorded with"), std::string::npos)
      << staleByOwn.out;

  // A row Kubeflow wrote before 2.18: the template-only key, no namespace.
  store::NewEntry legacy = old;
  legacy.key = fixtureKey("team-a", "cluster");
  legacy.namespaceName = "";
  legacy.maxCacheStaleness = -1;
  legacy.recordedAtInSec = now;
  store.record(store::CacheScope::kCluster, legacy);
  EXPECT_NE(run({"explain", "--pod", review35, "--cache-scope", "cluster"}).out.find("result: HIT"),
            std::string::npos);
}

TEST_F(CachectlTest, ExplainSaysWhenAuditModeWouldReuseALegacyRow) {
  auto& server = test_support::PostgresServer::shared();
  store::StoreOptions options;
  options.dsn = server.connectionString(database_);
  store::CacheStore store(options);
  store::NewEntry legacy;
  legacy.key = fixtureKey("team-a", "cluster");
  legacy.namespaceName = "";  // written by Kubeflow before 2.18
  legacy.executionOutput = R"({"workflows.argoproj.io/outputs":"{\"exitCode\":\"0\"}"})";
  legacy.recordedAtInSec = static_cast<int64_t>(std::time(nullptr)) - 60;
  const int64_t id = store.record(store::CacheScope::kCluster, legacy);
  const std::string review = std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json";

  const auto enforced = run({"explain", "--pod", review});
  EXPECT_NE(enforced.out.find("legacy cache mode: enforce"), std::string::npos) << enforced.out;
  EXPECT_NE(enforced.out.find("no namespace: written by Kubeflow before 2.18"), std::string::npos)
      << enforced.out;
  EXPECT_NE(enforced.out.find("KFP_SECURITY_LEGACY_CACHE_MODE=audit"), std::string::npos)
      << enforced.out;

  const auto audited =
      run({"explain", "--pod", review}, true, {{"KFP_SECURITY_LEGACY_CACHE_MODE", "audit"}});
  EXPECT_NE(audited.out.find("result: HIT, entry " + std::to_string(id)), std::string::npos)
      << audited.out;
  EXPECT_NE(audited.out.find("from a legacy row"), std::string::npos) << audited.out;
  EXPECT_NE(audited.out.find("ownership_unknown"), std::string::npos) << audited.out;

  const auto invalid =
      run({"explain", "--pod", review}, false, {{"KFP_SECURITY_LEGACY_CACHE_MODE", "Audit"}});
  EXPECT_NE(invalid.exitCode, 0);
  EXPECT_NE(invalid.err.find("KFP_SECURITY_LEGACY_CACHE_MODE"), std::string::npos) << invalid.err;
}

TEST_F(CachectlTest, RecordRefusesAKeyThePodsTemplateDoesNotGive) {
  // team-a's key on a team-b pod: what a tenant forging another's key would submit.
  const auto forged = run({"record", "--pod", completedPod("team-b", fixtureKey("team-a"))}, false);
  EXPECT_EQ(forged.exitCode, 1);
  EXPECT_NE(forged.err.find("not the key of the pod's template and namespace"), std::string::npos)
      << forged.err;
  EXPECT_EQ(json::parse(run({"stats", "--json"}).out)["entries"], 0);
}

TEST_F(CachectlTest, RecordingIntoAnotherNamespaceIsAskedForByName) {
  // Without the flag, a team-b pod is recorded for team-b only.
  const auto own = run({"record", "--pod", completedPod("team-b", fixtureKey("team-b"))});
  ASSERT_EQ(own.exitCode, 0) << own.err;
  EXPECT_NE(own.out.find("for key " + fixtureKey("team-b") + " in namespace team-b"),
            std::string::npos)
      << own.out;
  EXPECT_NE(run({"list", "--namespace", "team-a"}).out.find("no entries"), std::string::npos);

  // With it, the same result is recorded under team-a's own key, and says so.
  const auto copied = run({"record", "--pod", completedPod("team-b", fixtureKey("team-b")),
                           "--into-namespace", "team-a"});
  ASSERT_EQ(copied.exitCode, 0) << copied.err;
  EXPECT_NE(copied.out.find("for key " + fixtureKey("team-a") + " in namespace team-a"),
            std::string::npos)
      << copied.out;
  EXPECT_NE(copied.err.find("recording for namespace team-a, not the pod's own (team-b)"),
            std::string::npos)
      << copied.err;
  EXPECT_EQ(json::parse(run({"stats", "--json"}).out)["entries"], 2);
  // The pod's own key is still checked first: a forged key is refused whatever the target.
  EXPECT_EQ(run({"record", "--pod", completedPod("team-b", fixtureKey("team-a")),
                 "--into-namespace", "team-a"},
                false)
                .exitCode,
            1);
}

TEST_F(CachectlTest, PurgeAsksDryRunsAndDeletes) {
  ASSERT_EQ(run({"record", "--pod", completedPod("team-a", fixtureKey("team-a"))}).exitCode, 0);
  ASSERT_EQ(run({"record", "--pod", completedPod("team-b", fixtureKey("team-b"))}).exitCode, 0);

  const auto unfiltered = run({"purge"});
  EXPECT_EQ(unfiltered.exitCode, 1);
  EXPECT_NE(unfiltered.err.find("purge needs"), std::string::npos);

  const auto dry = run({"purge", "--namespace", "team-a", "--dry-run"});
  EXPECT_NE(dry.out.find("1 entries match"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("dry run: nothing deleted"), std::string::npos);

  // Tests have no terminal on stdin: without --yes nothing is deleted.
  const auto unconfirmed = run({"purge", "--namespace", "team-a"});
  EXPECT_EQ(unconfirmed.exitCode, 1);
  EXPECT_NE(unconfirmed.err.find("without confirmation"), std::string::npos) << unconfirmed.err;

  const auto purged = run({"purge", "--namespace", "team-a", "--yes"});
  EXPECT_NE(purged.out.find("deleted 1 entries"), std::string::npos) << purged.out;
  EXPECT_EQ(json::parse(run({"stats", "--json"}).out)["entries"], 1);
}

TEST_F(CachectlTest, GcNeedsALimitAndDeletesOldEntries) {
  const std::string key = fixtureKey();
  ASSERT_EQ(run({"record", "--pod", completedPod("team-a", key)}).exitCode, 0);
  const auto nothing = run({"gc"});
  EXPECT_EQ(nothing.exitCode, 1);
  EXPECT_NE(nothing.err.find("nothing to collect"), std::string::npos);
  EXPECT_NE(run({"gc", "--max-staleness", "P1D"}).out.find("deleted 0 expired entries"),
            std::string::npos);
  EXPECT_NE(run({"gc", "--max-entries", "0"}).out.find("evicted 1"), std::string::npos);
  EXPECT_EQ(json::parse(run({"stats", "--json"}).out)["entries"], 0);
  EXPECT_EQ(run({"gc", "--max-staleness", "30 days"}).exitCode, 1);
}

TEST_F(CachectlTest, EmptyValuesAreReadAsGoReadsThem) {
  const std::string key = fixtureKey();
  ASSERT_EQ(run({"record", "--pod", completedPod("team-a", key), "--db_password="}).exitCode, 0);
  // "--namespace=" selects rows without a namespace (none here); the flag after it still counts.
  const auto legacyOnly = run({"-db_password=", "list", "--namespace=", "--json"});
  ASSERT_EQ(legacyOnly.exitCode, 0) << legacyOnly.err;
  EXPECT_EQ(json::parse(legacyOnly.out), json::array());
  const auto teamA = run({"list", "-namespace=team-a", "--json", "--db_password="});
  ASSERT_EQ(teamA.exitCode, 0) << teamA.err;
  EXPECT_EQ(json::parse(teamA.out).size(), 1u) << teamA.out;

  const auto emptyPort = run({"stats", "--db_port="}, false);
  EXPECT_NE(emptyPort.exitCode, 0);
  EXPECT_NE(emptyPort.err.find("--db_port: empty value; expected a port 1-65535"),
            std::string::npos)
      << emptyPort.err;
  const auto emptyKey = run({"purge", "--key=", "--all", "--yes"});
  EXPECT_NE(emptyKey.exitCode, 0);
  EXPECT_NE(emptyKey.err.find("--key: empty value"), std::string::npos) << emptyKey.err;
  EXPECT_EQ(json::parse(run({"stats", "--json"}).out)["entries"], 1) << "nothing was purged";
}

TEST_F(CachectlTest, ExplainReadsTheLegacyCacheModeAsTheServerDoes) {
  const std::string review = std::string(KCACHE_TEST_DATA_DIR) + "/admission/argo-3.5-v1.json";
  ::unsetenv("KFP_SECURITY_LEGACY_CACHE_MODE");
  const auto unset = run({"explain", "--pod", review});
  EXPECT_NE(unset.out.find("legacy cache mode: enforce"), std::string::npos) << unset.out;

  ::setenv("KFP_SECURITY_LEGACY_CACHE_MODE", "audit", 1);
  const auto audit = run({"explain", "--pod", review});
  ::setenv("KFP_SECURITY_LEGACY_CACHE_MODE", "permissive", 1);
  const auto invalid = run({"explain", "--pod", review});
  const auto otherCommand = run({"stats"});
  ::unsetenv("KFP_SECURITY_LEGACY_CACHE_MODE");
  EXPECT_NE(audit.out.find("legacy cache mode: audit"), std::string::npos) << audit.out;
  EXPECT_EQ(invalid.exitCode, 1);
  EXPECT_NE(invalid.err.find("KFP_SECURITY_LEGACY_CACHE_MODE=\"permissive\" is not a legacy cache "
                             "mode: expected enforce or audit"),
            std::string::npos)
      << invalid.err;
  EXPECT_EQ(otherCommand.exitCode, 0) << "only explain reads the mode: " << otherCommand.err;
}

TEST_F(CachectlTest, DatabaseFailuresSayWhereWithoutThePassword) {
  const auto result = run(
      {"stats", "--db-host", "127.0.0.1", "--db-port", "1", "--db-password", "s3cret-pw"}, false);
  EXPECT_EQ(result.exitCode, 1);
  EXPECT_NE(result.err.find("cannot open the cache database"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("127.0.0.1:1"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("s3cret-pw"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace kcache::cachectl
