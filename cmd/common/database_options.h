#pragma once
// The database flags of cache-server and cachectl (docs/operations.md, "Flags"). Kubeflow
// Pipelines' spellings (--db_host) are accepted as they are; the kebab-case ones (--db-host) are
// documented. Each can also come from the environment variable Kubeflow's manifests set
// (DBCONFIG_*). An empty host, name, user, password or extra parameters is the empty string
// (libpq's defaults; no password), as Go reads `--db_password=`; an empty driver or port is
// refused.
#include <string>

#include <CLI/CLI.hpp>

#include "store/dsn.h"

namespace kcache::cmd {

struct DatabaseOptions {
  std::string driver = "postgres";
  store::DatabaseFlags flags;
};

void addDatabaseOptions(CLI::App& app, DatabaseOptions& options);

// Throws std::invalid_argument for a driver other than PostgreSQL's.
void validateDatabaseOptions(const DatabaseOptions& options);

}  // namespace kcache::cmd
