#pragma once
// kcache's schema, as numbered migrations over the table Kubeflow Pipelines' GORM model creates
// (docs/store.md). An SQL migration runs in its own transaction holding a transaction-level
// advisory lock; a code migration (one that needs C++, such as recomputing keys) runs in bounded
// batches, each its own transaction, while its connection holds the same lock at session level.
// Either is recorded in kcache_schema_migrations; a server that waited for the lock finds the
// work done, so each runs exactly once across replicas, and a code migration interrupted midway
// resumes where it stopped.
#include <chrono>
#include <cstdint>
#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace kcache::store {

struct Migration {
  int version;
  std::string name;
  std::string sql;  // one or more statements, no parameters; empty for a code migration
  // A code migration: does its work in its own transactions, each bounded by `timeout`.
  std::function<void(pqxx::connection& connection, std::chrono::milliseconds timeout)> code;
};

// Migration 5's work, exposed for tests: converts the entries older kcache versions recorded in
// namespace scope (template-only key, "ScopeKey" = namespace) to the namespace-bound key,
// recomputed from the stored template and namespace, `batchSize` rows per transaction. Entries
// whose stored template does not give back their stored key (a template Argo offloaded to a
// ConfigMap) cannot be converted and are left as they are: they can no longer hit, and GC
// removes them with age.
struct KeyConversionResult {
  int64_t converted = 0;
  int64_t unconvertible = 0;
  int64_t supersededByExisting = 0;  // a newer entry already had the new key (Kubeflow 2.18)
  int64_t batches = 0;
};
KeyConversionResult convertNamespaceEntriesToBoundKeys(pqxx::connection& connection,
                                                       std::chrono::milliseconds timeout,
                                                       int64_t batchSize = 500);

// All migrations, in order.
const std::vector<Migration>& schemaMigrations();

// The advisory lock key that serialises migrations between kcache servers.
inline constexpr long long kMigrationLockKey = 0x6b63616368650001LL;  // "kcache" 0001

// Applies the migrations `connection` lacks; returns how many were applied.
int applyMigrations(pqxx::connection& connection, std::chrono::milliseconds timeout);

}  // namespace kcache::store
