// Kubeflow 2.18's namespace-bound keys in the store: the databases the three writers leave
// (Kubeflow up to 2.17, Kubeflow 2.18, kcache before and after migration 5), read in both
// directions, the key conversion of migration 5 (batches, conflicts, replicas at once), and the
// audit-mode lookup.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/execution_key.h"
#include "store/migrations.h"
#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

int64_t nowInSec() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A realistic template per step number: the image differs, so the keys differ.
std::string templateOf(int step) {
  return R"json({"name":"train","container":{"image":"python:3.)json" + std::to_string(step) +
         R"json(","command":["python","-c","print(1)"]},"inputs":{"parameters":[{"name":"lr","value":"0.1"}]}})json";
}
std::string templateOnlyKey(int step) {
  return core::computeExecutionKey(templateOf(step)).value().hex();
}
std::string boundKey(int step, const std::string& namespaceName) {
  return core::computeExecutionKey(templateOf(step), core::KeyBinding::kNamespaceBound,
                                   namespaceName)
      .value()
      .hex();
}

// The statement GORM issues when Kubeflow (any version) creates a row, with the namespace column
// Kubeflow 2.18 adds (empty for earlier versions).
std::string kubeflowInsert(const std::string& key, int step, const std::string& namespaceName,
                           const std::string& output, int64_t maxStaleness, int64_t startedAt,
                           bool withNamespaceColumn) {
  const std::string columns =
      R"("ExecutionCacheKey","ExecutionTemplate","ExecutionOutput","MaxCacheStaleness","StartedAtInSec","EndedAtInSec")";
  std::string statement = "INSERT INTO execution_caches (" + columns +
                          (withNamespaceColumn ? R"(,"Namespace")" : "") + ") VALUES ('" + key +
                          "', '" + templateOf(step) + "', '" + output + "', " +
                          std::to_string(maxStaleness) + ", " + std::to_string(startedAt) + ", " +
                          std::to_string(startedAt);
  if (withNamespaceColumn) statement += ", '" + namespaceName + "'";
  return statement + ");";
}

// What Kubeflow 2.18 adds at startup: the namespace column and its non-unique index.
constexpr const char* kKubeflow218Additions = R"(
  ALTER TABLE "execution_caches" ADD COLUMN "Namespace" text NOT NULL DEFAULT '';
  CREATE INDEX IF NOT EXISTS "idx_cache_namespace_key"
    ON "execution_caches" ("Namespace","ExecutionCacheKey");)";

// Kubeflow 2.18's lookup, written from its documented behaviour: equality on namespace and key
// (no ORDER BY), then in Go: fresh by the row's own staleness and by the pod's, newest wins.
struct KubeflowRow {
  int64_t id;
  std::string output;
};
std::optional<KubeflowRow> kubeflow218Lookup(const std::string& dsn,
                                             const std::string& namespaceName,
                                             const std::string& key, int64_t podStaleness,
                                             int64_t now) {
  pqxx::connection connection(dsn);
  pqxx::nontransaction txn(connection);
  const auto rows = txn.exec_params(
      R"(SELECT "ID", "ExecutionOutput", "MaxCacheStaleness", "StartedAtInSec"
         FROM "execution_caches" WHERE "ExecutionCacheKey" = $1 AND "Namespace" = $2)",
      key, namespaceName);
  std::optional<KubeflowRow> newest;
  int64_t newestStarted = 0;
  for (const auto& row : rows) {
    const int64_t maxStaleness = row[2].as<int64_t>();
    const int64_t started = row[3].as<int64_t>();
    if (maxStaleness >= 0 && now - started > maxStaleness) continue;
    if (podStaleness >= 0 && now - started > podStaleness) continue;
    if (!newest || started >= newestStarted) {
      newest = KubeflowRow{row[0].as<int64_t>(), row[1].as<std::string>()};
      newestStarted = started;
    }
  }
  return newest;
}

class Kubeflow218Test : public StoreTest {
 protected:
  // A database as kcache left it before Kubeflow 2.18 (migrations 1-3 applied).
  void migrateLikeKcacheBefore218() {
    pqxx::connection connection(dsn_);
    pqxx::work txn(connection);
    txn.exec(R"(CREATE TABLE kcache_schema_migrations (version integer PRIMARY KEY,
                name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()))");
    for (const auto& migration : schemaMigrations()) {
      if (migration.version > 3) break;
      txn.exec(migration.sql);
      txn.exec_params("INSERT INTO kcache_schema_migrations (version, name) VALUES ($1, $2)",
                      migration.version, migration.name);
    }
    txn.commit();
  }

  // A row as kcache before 2.18 recorded it in namespace scope.
  void oldKcacheRow(int step, const std::string& namespaceName, const std::string& output,
                    int64_t startedAt, const std::string& key = {}) {
    sql(R"(INSERT INTO execution_caches ("ExecutionCacheKey","ExecutionTemplate","ExecutionOutput",
           "MaxCacheStaleness","StartedAtInSec","EndedAtInSec","Namespace","ScopeKey","PodName")
           VALUES (')" +
        (key.empty() ? templateOnlyKey(step) : key) + "', '" + templateOf(step) + "', '" + output +
        "', -1, " + std::to_string(startedAt) + ", " + std::to_string(startedAt) + ", '" +
        namespaceName + "', '" + namespaceName + "', 'pod')");
  }
};

TEST_F(Kubeflow218Test, SchemaHasKubeflow218sNamespaceColumnAndIndex) {
  store();
  const auto column =
      sql("SELECT data_type, is_nullable, column_default FROM information_schema.columns "
          "WHERE table_name = 'execution_caches' AND column_name = 'Namespace'");
  ASSERT_EQ(column.size(), 1u);
  EXPECT_EQ(column[0][0].as<std::string>(), "text");
  EXPECT_EQ(column[0][1].as<std::string>(), "NO");
  EXPECT_EQ(column[0][2].as<std::string>(), "''::text");
  const auto index =
      sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'execution_caches' "
          "AND indexname = 'idx_cache_namespace_key'");
  ASSERT_EQ(index.size(), 1u);
  const std::string definition = index[0][0].as<std::string>();
  EXPECT_EQ(definition.find("UNIQUE"), std::string::npos) << definition;
  EXPECT_NE(definition.find(R"(("Namespace", "ExecutionCacheKey"))"), std::string::npos)
      << definition;
}

TEST_F(Kubeflow218Test, RowsKubeflow218WroteHitInNamespaceScopeOnlyInTheirNamespace) {
  const int64_t now = nowInSec();
  // Kubeflow 2.18 ran first: its schema, its rows.
  sql(std::string(kKubeflowSchema) + kKubeflow218Additions +
      kubeflowInsert(boundKey(1, "team-a"), 1, "team-a", "a-out", -1, now - 60, true) +
      kubeflowInsert(boundKey(1, "team-b"), 1, "team-b", "b-out", -1, now - 30, true));
  CacheStore& s = store();
  const auto a = s.lookup(CacheScope::kNamespace, "team-a", boundKey(1, "team-a"), -1, now);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->executionOutput, "a-out");
  EXPECT_EQ(a->namespaceName, "team-a");
  EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-b", boundKey(1, "team-a"), -1, now));
  EXPECT_FALSE(s.lookup(CacheScope::kCluster, "", templateOnlyKey(1), -1, now));
  // Kubeflow 2.18 keeps writing after kcache migrated the table; kcache reads those rows too.
  sql(kubeflowInsert(boundKey(1, "team-c"), 1, "team-c", "c-out", -1, now, true));
  const auto c = s.lookup(CacheScope::kNamespace, "team-c", boundKey(1, "team-c"), -1, now);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->executionOutput, "c-out");
}

TEST_F(Kubeflow218Test, RollbackKubeflow218FindsKcachesNamespaceEntries) {
  const int64_t now = nowInSec();
  CacheStore& s = store();
  NewEntry entry = makeEntry(boundKey(2, "team-a"), "team-a", now - 10, -1,
                             R"({"pipelines.kubeflow.org/metadata_execution_id":"7",)"
                             R"("workflows.argoproj.io/outputs":"{\"exitCode\":\"0\"}"})");
  entry.executionTemplate = templateOf(2);
  const int64_t id = s.record(CacheScope::kNamespace, entry);
  const auto found = kubeflow218Lookup(dsn_, "team-a", boundKey(2, "team-a"), -1, now);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, id);
  EXPECT_EQ(found->output, entry.executionOutput);
  EXPECT_FALSE(kubeflow218Lookup(dsn_, "team-b", boundKey(2, "team-a"), -1, now));
  // Kubeflow 2.18 never looks a cluster-scope entry up: its keys are bound.
  s.record(CacheScope::kCluster, makeEntry(templateOnlyKey(3), "team-a", now));
  EXPECT_FALSE(kubeflow218Lookup(dsn_, "team-a", boundKey(3, "team-a"), -1, now));
}

TEST_F(Kubeflow218Test, DatabaseOfKubeflow217IsReusedOnlyInClusterScopeOrThroughAudit) {
  const int64_t now = nowInSec();
  constexpr int64_t kDay = 86400;
  // What Kubeflow up to 2.17 leaves behind: duplicate keys, stale rows, a P0D row, rows 400
  // days old; no namespace anywhere.
  sql(std::string(kKubeflowSchema) +
      kubeflowInsert(templateOnlyKey(4), 4, "", "4-old", -1, now - 400 * kDay, false) +
      kubeflowInsert(templateOnlyKey(4), 4, "", "4-newest", -1, now - 100, false) +
      kubeflowInsert(templateOnlyKey(4), 4, "", "4-middle", -1, now - 200, false) +
      kubeflowInsert(templateOnlyKey(5), 5, "", "5-usable", -1, now - 500, false) +
      kubeflowInsert(templateOnlyKey(5), 5, "", "5-p0d", 0, now - 50, false) +
      kubeflowInsert(templateOnlyKey(6), 6, "", "6-stale", 3600, now - 400 * kDay, false));
  CacheStore& s = store();
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 3);  // one per key
  // Namespace scope never sees them: neither under the bound key nor under the legacy key.
  for (int step : {4, 5, 6}) {
    EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-a", boundKey(step, "team-a"), -1, now));
    EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-a", templateOnlyKey(step), -1, now));
  }
  // Cluster scope: the newest usable row of each key.
  EXPECT_EQ(s.lookup(CacheScope::kCluster, "", templateOnlyKey(4), -1, now)->executionOutput,
            "4-newest");
  EXPECT_EQ(s.lookup(CacheScope::kCluster, "", templateOnlyKey(5), -1, now)->executionOutput,
            "5-usable");
  EXPECT_FALSE(s.lookup(CacheScope::kCluster, "", templateOnlyKey(6), -1, now));
  // Audit mode's lookup: the same rows, by the same freshness rules.
  EXPECT_EQ(s.lookupLegacy(templateOnlyKey(4), -1, now)->executionOutput, "4-newest");
  EXPECT_FALSE(s.lookupLegacy(templateOnlyKey(4), 50, now));  // the pod accepts 50 s
  EXPECT_FALSE(s.lookupLegacy(templateOnlyKey(6), -1, now));
  EXPECT_FALSE(s.lookupLegacy(templateOnlyKey(4), 0, now));  // staleness 0: caching off
}

TEST_F(Kubeflow218Test, LegacyLookupNeverReturnsAnEntryThatHasANamespace) {
  const int64_t now = nowInSec();
  CacheStore& s = store();
  // kcache's cluster scope records the template-only key with the recording namespace: it has
  // an owner, so audit mode must not hand it to another namespace.
  s.record(CacheScope::kCluster, makeEntry(templateOnlyKey(7), "team-a", now - 10));
  EXPECT_TRUE(s.lookup(CacheScope::kCluster, "", templateOnlyKey(7), -1, now));
  EXPECT_FALSE(s.lookupLegacy(templateOnlyKey(7), -1, now));
}

TEST_F(Kubeflow218Test, MigrationMovesOldNamespaceEntriesToTheBoundKey) {
  const int64_t now = nowInSec();
  migrateLikeKcacheBefore218();
  oldKcacheRow(1, "team-a", "1-a", now - 100);
  oldKcacheRow(1, "team-b", "1-b", now - 90);
  oldKcacheRow(2, "team-a", "2-a", now - 80);
  // Argo offloaded this step's template: the stored text does not give back the stored key.
  oldKcacheRow(3, "team-a", "offloaded", now - 70, std::string(64, 'f'));
  sql(kubeflowInsert(templateOnlyKey(9), 9, "", "legacy", -1, now - 60, false));

  CacheStore& s = store();
  EXPECT_EQ(scalar("SELECT max(version) FROM kcache_schema_migrations"),
            schemaMigrations().back().version);
  EXPECT_EQ(
      s.lookup(CacheScope::kNamespace, "team-a", boundKey(1, "team-a"), -1, now)->executionOutput,
      "1-a");
  EXPECT_EQ(
      s.lookup(CacheScope::kNamespace, "team-b", boundKey(1, "team-b"), -1, now)->executionOutput,
      "1-b");
  EXPECT_EQ(
      s.lookup(CacheScope::kNamespace, "team-a", boundKey(2, "team-a"), -1, now)->executionOutput,
      "2-a");
  // Kubeflow 2.18 pointed at the migrated database finds them too.
  EXPECT_TRUE(kubeflow218Lookup(dsn_, "team-b", boundKey(1, "team-b"), -1, now));
  // The template-only keys are gone from namespace scope, and never leak to cluster scope.
  EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-a", templateOnlyKey(1), -1, now));
  EXPECT_FALSE(s.lookup(CacheScope::kCluster, "", templateOnlyKey(1), -1, now));
  // The unconvertible entry is kept as it was (for explain), and matches nothing.
  EXPECT_EQ(scalar(R"(SELECT count(*) FROM execution_caches WHERE "ScopeKey" = 'team-a')"), 1);
  EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-a", std::string(64, 'f'), -1, now));
  // Kubeflow's legacy row is untouched.
  EXPECT_EQ(s.lookup(CacheScope::kCluster, "", templateOnlyKey(9), -1, now)->executionOutput,
            "legacy");
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 5);
}

TEST_F(Kubeflow218Test, MigrationResolvesRowsThatMeetOnOneBoundKey) {
  const int64_t now = nowInSec();
  // Kubeflow 2.18 ran on this database before kcache did (its rows carry the bound key and a
  // namespace) and kcache before 2.18 ran too: the same step in team-a, twice.
  sql(std::string(kKubeflowSchema) + kKubeflow218Additions +
      kubeflowInsert(boundKey(1, "team-a"), 1, "team-a", "kubeflow-newer", -1, now - 10, true) +
      kubeflowInsert(boundKey(2, "team-a"), 2, "team-a", "kubeflow-older", -1, now - 500, true));
  // Migrations 1-3 of kcache copy the namespace into "ScopeKey"; then kcache's own rows.
  migrateLikeKcacheBefore218();
  oldKcacheRow(1, "team-a", "kcache-older", now - 100);
  oldKcacheRow(2, "team-a", "kcache-newer", now - 50);

  CacheStore& s = store();
  EXPECT_EQ(
      s.lookup(CacheScope::kNamespace, "team-a", boundKey(1, "team-a"), -1, now)->executionOutput,
      "kubeflow-newer");
  EXPECT_EQ(
      s.lookup(CacheScope::kNamespace, "team-a", boundKey(2, "team-a"), -1, now)->executionOutput,
      "kcache-newer");
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 2);
  EXPECT_EQ(scalar(R"(SELECT count(*) FROM execution_caches WHERE "ScopeKey" <> '')"), 0);
}

TEST_F(Kubeflow218Test, ConversionRunsInBoundedBatchesAndResumes) {
  const int64_t now = nowInSec();
  migrateLikeKcacheBefore218();
  for (int step = 1; step <= 5; ++step) oldKcacheRow(step, "team-a", "out", now - step);
  pqxx::connection connection(dsn_);
  const auto first = convertNamespaceEntriesToBoundKeys(connection, std::chrono::seconds(10), 2);
  EXPECT_EQ(first.converted, 5);
  EXPECT_EQ(first.batches, 3);
  // Run again (a replica that stopped midway and restarted): nothing left to do.
  const auto again = convertNamespaceEntriesToBoundKeys(connection, std::chrono::seconds(10), 2);
  EXPECT_EQ(again.converted, 0);
  EXPECT_EQ(again.batches, 0);
}

TEST_F(Kubeflow218Test, ServersMigratingAtOnceConvertEachEntryOnce) {
  const int64_t now = nowInSec();
  migrateLikeKcacheBefore218();
  constexpr int kSteps = 300;
  for (int step = 1; step <= kSteps; ++step) {
    oldKcacheRow(step, step % 2 ? "team-a" : "team-b", "out-" + std::to_string(step), now - step);
  }
  const auto migrated = migrateConcurrently(3);
  const auto& stores = migrated.stores;
  // Migrations 4 onwards, once in all.
  EXPECT_EQ(migrated.applied, schemaMigrations().back().version - 3);
  EXPECT_EQ(scalar("SELECT count(*) FROM kcache_schema_migrations WHERE version = 5"), 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), kSteps);
  for (int step = 1; step <= kSteps; ++step) {
    const std::string ns = step % 2 ? "team-a" : "team-b";
    const auto entry = stores[0]->lookup(CacheScope::kNamespace, ns, boundKey(step, ns), -1, now);
    ASSERT_TRUE(entry) << step;
    EXPECT_EQ(entry->executionOutput, "out-" + std::to_string(step));
  }
}

TEST_F(Kubeflow218Test, ANamespaceNeverReplacesAnotherNamespacesEntry) {
  const int64_t now = nowInSec();
  CacheStore& s = store();
  // Keys bound to different namespaces never collide; a key handed to the store for the wrong
  // namespace (a bug, or a forged key the watcher failed to refuse) must not take the entry over.
  const int64_t id = s.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", now - 10));
  EXPECT_THROW(s.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-b", now)), StoreError);
  const auto kept = s.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, now);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->id, id);
  EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-b", keyOf('a'), -1, now));
}

}  // namespace
}  // namespace kcache::store::testing
