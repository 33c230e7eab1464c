#include "store/migrations.h"

#include <spdlog/spdlog.h>

namespace kcache::store {

const std::vector<Migration>& schemaMigrations() {
  static const std::vector<Migration> migrations = {
      {1, "kubeflow_execution_caches",
       // Exactly what GORM's AutoMigrate creates for Kubeflow's ExecutionCache model, so a
       // database written by Kubeflow Pipelines is already at this version in all but the record.
       R"sql(
CREATE TABLE IF NOT EXISTS execution_caches (
  "ID" bigserial NOT NULL,
  "ExecutionCacheKey" text NOT NULL,
  "ExecutionTemplate" text NOT NULL,
  "ExecutionOutput" text NOT NULL,
  "MaxCacheStaleness" bigint NOT NULL,
  "StartedAtInSec" bigint NOT NULL,
  "EndedAtInSec" bigint NOT NULL,
  PRIMARY KEY ("ID"));
CREATE INDEX IF NOT EXISTS idx_cache_key ON execution_caches ("ExecutionCacheKey");
CREATE INDEX IF NOT EXISTS composite_id_idx ON execution_caches ("ID", "StartedAtInSec");
)sql"},
      {2, "kcache_columns",
       // "Namespace" may already exist (newer Kubeflow versions add it, nullable): keep its values.
       // Columns are added with their default, which PostgreSQL does without rewriting the
       // table; the UPDATEs only touch rows a newer Kubeflow wrote.
       // "ScopeKey" is what the unique index uses: the owning namespace for namespace-scoped
       // entries, "" for cluster-scoped ones and for legacy rows (which therefore match only in
       // cluster scope).
       R"sql(
ALTER TABLE execution_caches ADD COLUMN IF NOT EXISTS "Namespace" text NOT NULL DEFAULT '';
UPDATE execution_caches SET "Namespace" = '' WHERE "Namespace" IS NULL;
ALTER TABLE execution_caches ALTER COLUMN "Namespace" SET DEFAULT '',
                             ALTER COLUMN "Namespace" SET NOT NULL;
ALTER TABLE execution_caches ADD COLUMN IF NOT EXISTS "ScopeKey" text NOT NULL DEFAULT '';
UPDATE execution_caches SET "ScopeKey" = "Namespace" WHERE "Namespace" <> '';
ALTER TABLE execution_caches
  ADD COLUMN IF NOT EXISTS "PodName" text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS "RunDurationInSec" bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS "HitCount" bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS "LastHitAtInSec" bigint;
)sql"},
      {3, "kcache_one_entry_per_scope_and_key",
       // Kubeflow allowed several rows per key. Keep one per (scope, key): the newest of those
       // that can still hit by their own staleness (then the newest overall). For any pod, the
       // newest usable row is at least as fresh as every other one, so no entry that could still
       // hit is lost.
       R"sql(
DELETE FROM execution_caches AS doomed
USING (
  SELECT "ID", row_number() OVER (
           PARTITION BY "ScopeKey", "ExecutionCacheKey"
           ORDER BY CASE WHEN "MaxCacheStaleness" < 0
                           OR floor(extract(epoch FROM now())) - "StartedAtInSec"
                              <= "MaxCacheStaleness"
                         THEN 0 ELSE 1 END,
                    "StartedAtInSec" DESC, "ID" DESC) AS rank
  FROM execution_caches) AS ranked
WHERE doomed."ID" = ranked."ID" AND ranked.rank > 1;
CREATE UNIQUE INDEX IF NOT EXISTS kcache_scope_key_uidx
  ON execution_caches ("ScopeKey", "ExecutionCacheKey");
CREATE INDEX IF NOT EXISTS kcache_started_idx ON execution_caches ("StartedAtInSec");
CREATE INDEX IF NOT EXISTS kcache_recency_idx
  ON execution_caches ((COALESCE("LastHitAtInSec", "StartedAtInSec")), "ID");
)sql"},
  };
  return migrations;
}

int applyMigrations(pqxx::connection& connection, std::chrono::milliseconds timeout) {
  int applied = 0;
  for (const Migration& migration : schemaMigrations()) {
    pqxx::work txn(connection, "kcache_migration");
    txn.exec("SET LOCAL statement_timeout = " + std::to_string(timeout.count()));
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    txn.exec(R"sql(
CREATE TABLE IF NOT EXISTS kcache_schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()))sql");
    const pqxx::result done = txn.exec_params(
        "SELECT 1 FROM kcache_schema_migrations WHERE version = $1", migration.version);
    if (!done.empty()) continue;
    txn.exec(migration.sql);
    txn.exec_params("INSERT INTO kcache_schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name);
    txn.commit();
    spdlog::info("store: applied schema migration {} ({})", migration.version, migration.name);
    ++applied;
  }
  return applied;
}

}  // namespace kcache::store
