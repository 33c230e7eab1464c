// Migrations: an empty database, a database Kubeflow Pipelines wrote (duplicates included), and
// servers migrating at the same time.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "core/execution_key.h"
#include "store/migrations.h"
#include "store/sql.h"
#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

// Every migration, numbered from 1 without gaps.
const int kMigrations = schemaMigrations().back().version;

std::string kubeflowRow(const std::string& key, const std::string& output, int64_t maxStaleness,
                        int64_t startedAt) {
  return "INSERT INTO execution_caches (\"ExecutionCacheKey\", \"ExecutionTemplate\", "
         "\"ExecutionOutput\", \"MaxCacheStaleness\", \"StartedAtInSec\", \"EndedAtInSec\") "
         "VALUES ('" +
         key + "', '{}', '" + output + "', " + std::to_string(maxStaleness) + ", " +
         std::to_string(startedAt) + ", " + std::to_string(startedAt) + ");";
}

int64_t nowInSec() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(StoreTest, OpeningAnEmptyDatabaseCreatesTheKubeflowTableAndKcacheSchema) {
  store();
  const pqxx::result columns =
      sql("SELECT column_name, data_type FROM information_schema.columns "
          "WHERE table_name = 'execution_caches' ORDER BY ordinal_position");
  std::vector<std::string> names;
  for (const auto& row : columns) names.push_back(row[0].as<std::string>());
  const std::vector<std::string> expected = {"ID",
                                             "ExecutionCacheKey",
                                             "ExecutionTemplate",
                                             "ExecutionOutput",
                                             "MaxCacheStaleness",
                                             "StartedAtInSec",
                                             "EndedAtInSec",
                                             "Namespace",
                                             "ScopeKey",
                                             "PodName",
                                             "RunDurationInSec",
                                             "HitCount",
                                             "LastHitAtInSec"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(columns[0][1].as<std::string>(), "bigint");
  EXPECT_EQ(columns[1][1].as<std::string>(), "text");

  std::set<std::string> indexes;
  for (const auto& row :
       sql("SELECT indexname FROM pg_indexes WHERE tablename = 'execution_caches'"))
    indexes.insert(row[0].as<std::string>());
  for (const char* name :
       {"execution_caches_pkey", "idx_cache_key", "composite_id_idx", "kcache_scope_key_uidx",
        "kcache_started_idx", "kcache_recency_idx", "idx_cache_namespace_key"}) {
    EXPECT_TRUE(indexes.count(name)) << name;
  }
  EXPECT_EQ(scalar("SELECT count(*) FROM kcache_schema_migrations"), kMigrations);
  EXPECT_EQ(scalar("SELECT max(version) FROM kcache_schema_migrations"), kMigrations);
  EXPECT_EQ(store().migrate(), 0) << "a second migration must find nothing to do";
}

TEST_F(StoreTest, LookupIsServedByTheUniqueIndex) {
  store();
  pqxx::connection connection(dsn_);
  pqxx::nontransaction txn(connection);
  txn.exec("SET enable_seqscan = off");  // a tiny table would otherwise just be scanned
  txn.exec("PREPARE lookup(text, bigint, bigint, text) AS " + sql::kLookup);
  for (const char* execute : {"EXPLAIN EXECUTE lookup('k', 100, -1, 'team-a')",
                              "EXPLAIN EXECUTE lookup('k', 100, -1, '')"}) {
    std::string plan;
    for (const auto& row : txn.exec(execute)) plan += row[0].as<std::string>() + "\n";
    EXPECT_NE(plan.find("Index Scan"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
  }
}

TEST_F(StoreTest, KubeflowDatabaseWithDuplicatesIsMigratedKeepingTheNewestUsableEntry) {
  const int64_t now = nowInSec();
  const std::string a = keyOf('a'), b = keyOf('b'), c = keyOf('c');
  sql(std::string(kKubeflowSchema) + kubeflowRow(a, "a-old", -1, now - 300) +
      kubeflowRow(a, "a-newest", -1, now - 100) + kubeflowRow(a, "a-middle", -1, now - 200) +
      // b's newest row was written with P0D and can never hit; the older one still can.
      kubeflowRow(b, "b-usable", -1, now - 500) + kubeflowRow(b, "b-dead", 0, now - 50) +
      kubeflowRow(c, "c-only", 3600, now - 10));

  CacheStore& s = store();
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 3);
  const auto hitA = s.lookup(CacheScope::kCluster, "", a, -1, now);
  ASSERT_TRUE(hitA);
  EXPECT_EQ(hitA->executionOutput, "a-newest");
  EXPECT_EQ(hitA->namespaceName, "");
  EXPECT_EQ(hitA->hitCount, 0);
  const auto hitB = s.lookup(CacheScope::kCluster, "", b, -1, now);
  ASSERT_TRUE(hitB);
  EXPECT_EQ(hitB->executionOutput, "b-usable");
  const auto hitC = s.lookup(CacheScope::kCluster, "", c, -1, now);
  ASSERT_TRUE(hitC);
  EXPECT_EQ(hitC->maxCacheStaleness, 3600);
  // Legacy rows belong to nobody: a namespace never sees them.
  EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-a", a, -1, now));

  // Kubeflow's own writer keeps working on the migrated table (its INSERT names only its columns)
  // and the unique index now refuses the duplicates it used to let through.
  sql(kubeflowRow(keyOf('d'), "d", -1, now));
  EXPECT_THROW(sql(kubeflowRow(keyOf('d'), "d-again", -1, now)), pqxx::unique_violation);
}

TEST_F(StoreTest, ExistingNamespaceColumnFromNewerKubeflowKeepsItsOwners) {
  const int64_t now = nowInSec();
  // Kubeflow 2.18 added the column (its rows carry the namespace-bound key); a legacy row has
  // none. Their template is '{}', whose keys these are.
  const auto canonical = core::CanonicalTemplate::of("{}").value();
  const std::string legacyKey = canonical.templateOnlyKey().hex();
  const std::string boundKey = canonical.namespaceBoundKey("team-a").hex();
  sql(std::string(kKubeflowSchema) + "ALTER TABLE execution_caches ADD COLUMN \"Namespace\" text;" +
      kubeflowRow(legacyKey, "legacy", -1, now - 10) + kubeflowRow(boundKey, "owned", -1, now) +
      "UPDATE execution_caches SET \"Namespace\" = 'team-a' WHERE \"ExecutionOutput\" = 'owned';");
  CacheStore& s = store();
  EXPECT_EQ(scalar("SELECT count(*) FROM execution_caches"), 2);
  const auto owned = s.lookup(CacheScope::kNamespace, "team-a", boundKey, -1, now);
  ASSERT_TRUE(owned);
  EXPECT_EQ(owned->executionOutput, "owned");
  EXPECT_EQ(owned->namespaceName, "team-a");
  const auto legacy = s.lookup(CacheScope::kCluster, "", legacyKey, -1, now);
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->executionOutput, "legacy");
  EXPECT_FALSE(s.lookup(CacheScope::kNamespace, "team-b", boundKey, -1, now));
}

TEST_F(StoreTest, TheAdmissionSecretIsWrittenOnceAndSharedByEveryStore) {
  const auto migrated = migrateConcurrently(3);
  const auto& stores = migrated.stores;
  const std::string first(64, 'a');
  EXPECT_EQ(stores[0]->sharedAdmissionSecret(first), first);
  // Another replica, or a restart, with its own random candidate gets the stored one.
  EXPECT_EQ(stores[1]->sharedAdmissionSecret(std::string(64, 'b')), first);
  EXPECT_EQ(stores[2]->sharedAdmissionSecret(std::string(64, 'c')), first);
  EXPECT_EQ(scalar("SELECT count(*) FROM kcache_admission_secret"), 1);
}

TEST_F(StoreTest, StoresMigratingAtOnceApplyEachMigrationOnce) {
  const auto migrated = migrateConcurrently(4);
  const auto& stores = migrated.stores;
  EXPECT_EQ(migrated.applied, kMigrations);
  EXPECT_EQ(scalar("SELECT count(*) FROM kcache_schema_migrations"), kMigrations);
  const int64_t id = stores[0]->record(CacheScope::kNamespace, makeEntry(keyOf('f'), "ns", 10));
  EXPECT_EQ(stores[1]->record(CacheScope::kNamespace, makeEntry(keyOf('f'), "ns", 10)), id);
}

}  // namespace
}  // namespace kcache::store::testing
