#include "store/migrations.h"

#include <spdlog/spdlog.h>

#include <map>

#include "core/execution_key.h"
#include "store/sql.h"

namespace kcache::store {
namespace {

void setStatementTimeout(pqxx::transaction_base& txn, std::chrono::milliseconds timeout) {
  txn.exec("SET LOCAL statement_timeout = " + std::to_string(timeout.count()));
}

// The session-level advisory lock a code migration holds across its transactions; released on
// every way out.
class SessionMigrationLock {
 public:
  SessionMigrationLock(pqxx::connection& connection, std::chrono::milliseconds timeout)
      : connection_(connection) {
    pqxx::nontransaction txn(connection_);
    txn.exec("SET statement_timeout = " + std::to_string(timeout.count()));
    txn.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    txn.exec("RESET statement_timeout");
  }
  ~SessionMigrationLock() {
    try {
      pqxx::nontransaction txn(connection_);
      txn.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
    } catch (const std::exception& error) {
      // The lock goes with the connection, which the caller closes.
      spdlog::warn("store: could not release the migration lock: {}", error.what());
    }
  }
  SessionMigrationLock(const SessionMigrationLock&) = delete;
  SessionMigrationLock& operator=(const SessionMigrationLock&) = delete;

 private:
  pqxx::connection& connection_;
};

constexpr const char* kCreateMigrationsTable = R"sql(
CREATE TABLE IF NOT EXISTS kcache_schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()))sql";

}  // namespace

KeyConversionResult convertNamespaceEntriesToBoundKeys(pqxx::connection& connection,
                                                       std::chrono::milliseconds timeout,
                                                       int64_t batchSize) {
  KeyConversionResult result;
  int64_t lastId = 0;
  for (;;) {
    pqxx::work txn(connection, "kcache_key_conversion");
    setStatementTimeout(txn, timeout);
    const pqxx::result rows = txn.exec_params(
        R"sql(SELECT "ID", "ExecutionCacheKey", "ScopeKey", "ExecutionTemplate", "StartedAtInSec"
              FROM execution_caches WHERE "ScopeKey" <> '' AND "ID" > $1
              ORDER BY "ID" LIMIT $2 FOR UPDATE)sql",
        lastId, batchSize);
    if (rows.empty()) break;
    ++result.batches;
    std::vector<int64_t> ids;
    std::vector<std::string> keys;
    std::vector<int64_t> startedAt;
    std::map<std::string, std::size_t> indexOfKey;  // two rows of one batch may meet on one key
    std::vector<int64_t> doomed;
    for (const auto& row : rows) {
      lastId = row[0].as<int64_t>();
      const auto storedKey = row[1].as<std::string>();
      const auto namespaceName = row[2].as<std::string>();
      const auto canonical = core::CanonicalTemplate::of(row[3].as<std::string>());
      if (!canonical) {
        ++result.unconvertible;
        continue;
      }
      const std::string boundKey = canonical->namespaceBoundKey(namespaceName).hex();
      // A row Kubeflow 2.18 wrote before kcache's first migration got its namespace copied into
      // "ScopeKey" by migration 2 and already has the bound key: only "ScopeKey" changes.
      if (storedKey != boundKey && canonical->templateOnlyKey().hex() != storedKey) {
        ++result.unconvertible;
        continue;
      }
      const int64_t started = row[4].as<int64_t>();
      if (const auto seen = indexOfKey.find(boundKey); seen != indexOfKey.end()) {
        // The newer of the two stays, as below for an entry already under the key.
        ++result.supersededByExisting;
        if (startedAt[seen->second] >= started) {
          doomed.push_back(lastId);
        } else {
          doomed.push_back(ids[seen->second]);
          ids[seen->second] = lastId;
          startedAt[seen->second] = started;
        }
        continue;
      }
      indexOfKey.emplace(boundKey, ids.size());
      ids.push_back(lastId);
      keys.push_back(boundKey);
      startedAt.push_back(started);
    }
    if (!doomed.empty()) {
      txn.exec_params(R"sql(DELETE FROM execution_caches WHERE "ID" = ANY($1::bigint[]))sql",
                      sql::arrayLiteral(doomed));
    }
    if (!ids.empty()) {
      const std::string idArray = sql::arrayLiteral(ids), keyArray = sql::arrayLiteral(keys);
      // An entry may already hold the new key (Kubeflow 2.18 wrote it into the same database):
      // of the two, the newer one stays.
      txn.exec_params(R"sql(
        DELETE FROM execution_caches AS existing
        USING unnest($1::bigint[], $2::text[]) AS c(id, key), execution_caches AS converting
        WHERE converting."ID" = c.id AND existing."ID" <> c.id AND existing."ScopeKey" = ''
          AND existing."ExecutionCacheKey" = c.key
          AND existing."StartedAtInSec" <= converting."StartedAtInSec")sql",
                      idArray, keyArray);
      const pqxx::result superseded = txn.exec_params(R"sql(
        DELETE FROM execution_caches AS converting
        USING unnest($1::bigint[], $2::text[]) AS c(id, key)
        WHERE converting."ID" = c.id AND EXISTS (
          SELECT 1 FROM execution_caches AS existing
          WHERE existing."ScopeKey" = '' AND existing."ExecutionCacheKey" = c.key))sql",
                                                      idArray, keyArray);
      result.supersededByExisting += static_cast<int64_t>(superseded.affected_rows());
      const pqxx::result converted = txn.exec_params(R"sql(
        UPDATE execution_caches AS e
        SET "ExecutionCacheKey" = c.key, "Namespace" = e."ScopeKey", "ScopeKey" = ''
        FROM unnest($1::bigint[], $2::text[]) AS c(id, key)
        WHERE e."ID" = c.id)sql",
                                                     idArray, keyArray);
      result.converted += static_cast<int64_t>(converted.affected_rows());
    }
    txn.commit();
  }
  return result;
}

const std::vector<Migration>& schemaMigrations() {
  static const std::vector<Migration> migrations = {
      {1,
       "kubeflow_execution_caches",
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
)sql",
       {}},
      {2,
       "kcache_columns",
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
)sql",
       {}},
      {3,
       "kcache_one_entry_per_scope_and_key",
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
)sql",
       {}},
      {4,
       "kubeflow_2_18_namespace_index",
       // The index Kubeflow 2.18's GORM model declares for its (namespace, key) lookups, under
       // its name, so Kubeflow's AutoMigrate finds it in place. Not unique, as in Kubeflow.
       R"sql(
CREATE INDEX IF NOT EXISTS idx_cache_namespace_key
  ON execution_caches ("Namespace", "ExecutionCacheKey");
)sql",
       {}},
      {5,
       "namespace_bound_keys",
       {},
       [](pqxx::connection& connection, std::chrono::milliseconds timeout) {
         const auto result = convertNamespaceEntriesToBoundKeys(connection, timeout);
         spdlog::info(
             "store: namespace-scope entries moved to Kubeflow 2.18's namespace-bound key: {} "
             "converted, {} replaced by a newer entry already under that key, {} left as they "
             "were (their stored template does not give back their key; they no longer hit)",
             result.converted, result.supersededByExisting, result.unconvertible);
       }},
      {6,
       "kcache_admission_secret",
       // The admission stamp secret when no --stamp-secret-file is given: one row, written once
       // by the first server that needs it (CacheStore::sharedAdmissionSecret), so every replica
       // sharing the database, and every restart, signs and verifies with the same secret.
       R"sql(
CREATE TABLE IF NOT EXISTS kcache_admission_secret (
  id smallint PRIMARY KEY CHECK (id = 1),
  secret text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
)sql",
       {}},
  };
  return migrations;
}

int applyMigrations(pqxx::connection& connection, std::chrono::milliseconds timeout) {
  int applied = 0;
  auto alreadyApplied = [](pqxx::transaction_base& txn, int version) {
    return !txn.exec_params("SELECT 1 FROM kcache_schema_migrations WHERE version = $1", version)
                .empty();
  };
  auto noteApplied = [](pqxx::transaction_base& txn, const Migration& migration) {
    txn.exec_params("INSERT INTO kcache_schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name);
  };
  for (const Migration& migration : schemaMigrations()) {
    if (migration.code) {
      const SessionMigrationLock lock(connection, timeout);
      {
        pqxx::work txn(connection, "kcache_migration");
        txn.exec(kCreateMigrationsTable);
        const bool done = alreadyApplied(txn, migration.version);
        txn.commit();
        if (done) continue;
      }
      migration.code(connection, timeout);
      pqxx::work txn(connection, "kcache_migration");
      noteApplied(txn, migration);
      txn.commit();
    } else {
      pqxx::work txn(connection, "kcache_migration");
      setStatementTimeout(txn, timeout);
      txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      txn.exec(kCreateMigrationsTable);
      if (alreadyApplied(txn, migration.version)) continue;
      txn.exec(migration.sql);
      noteApplied(txn, migration);
      txn.commit();
    }
    spdlog::info("store: applied schema migration {} ({})", migration.version, migration.name);
    ++applied;
  }
  return applied;
}

}  // namespace kcache::store
