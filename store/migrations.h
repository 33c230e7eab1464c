#pragma once
// kcache's schema, as numbered migrations over the table Kubeflow Pipelines' GORM model creates.
// Each migration runs in its own transaction holding a transaction-level advisory lock, and is
// recorded in kcache_schema_migrations; a server that waited for the lock finds the work done.
#include <chrono>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace kcache::store {

struct Migration {
  int version;
  std::string name;
  std::string sql;  // one or more statements, no parameters
};

// All migrations, in order.
const std::vector<Migration>& schemaMigrations();

// The advisory lock key that serialises migrations between kcache servers.
inline constexpr long long kMigrationLockKey = 0x6b63616368650001LL;  // "kcache" 0001

// Applies the migrations `connection` lacks; returns how many were applied.
int applyMigrations(pqxx::connection& connection, std::chrono::milliseconds timeout);

}  // namespace kcache::store
