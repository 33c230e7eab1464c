#pragma once
// The database flags of cache-server and cachectl (DESIGN.md section 8). Kubeflow Pipelines'
// spellings (--db_host) are accepted as they are; the kebab-case ones (--db-host) are documented.
// Each can also come from the environment variable Kubeflow's manifests set (DBCONFIG_*).
#include <string>
#include <vector>

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

// Rewrites Go-style single-dash long flags (-db_host=x, -listen_port 8443) to "--" form, so the
// arguments of Kubeflow's own Deployment work unchanged.
std::vector<std::string> normalizeGoStyleArguments(int argc, const char* const* argv);

}  // namespace kcache::cmd
