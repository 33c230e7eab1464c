#include "cmd/common/database_options.h"

#include <stdexcept>

#include "cmd/common/go_style_flags.h"

namespace kcache::cmd {

void addDatabaseOptions(CLI::App& app, DatabaseOptions& options) {
  app.add_option("--db-driver,--db_driver", options.driver,
                 "Database driver: postgres (pgx and postgresql are accepted as the same); "
                 "kcache stores its cache in PostgreSQL only")
      ->check(cmd::nonEmpty("postgres, pgx or postgresql"))
      ->envname("DBCONFIG_DRIVER")
      ->capture_default_str();
  app.add_option("--db-host,--db_host", options.flags.host, "PostgreSQL host name")
      ->envname("DBCONFIG_HOST_NAME")
      ->capture_default_str();
  app.add_option("--db-port,--db_port", options.flags.port, "PostgreSQL port")
      ->check(cmd::nonEmpty("a port 1-65535"))
      ->envname("DBCONFIG_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--db-name,--db_name", options.flags.dbName, "Database name")
      ->envname("DBCONFIG_DB_NAME")
      ->capture_default_str();
  app.add_option("--db-user,--db_user", options.flags.user, "Database user")
      ->envname("DBCONFIG_USER")
      ->capture_default_str();
  app.add_option("--db-password,--db_password", options.flags.password,
                 "Database password (prefer the environment variable; never logged)")
      ->envname("DBCONFIG_PASSWORD");
  app.add_option("--db-extra-params,--db_extra_params", options.flags.extraParams,
                 "Extra libpq parameters, e.g. sslmode=verify-full&sslrootcert=/ca.pem, or a "
                 "JSON object of them")
      ->envname("DBCONFIG_EXTRA_PARAMS");
}

void validateDatabaseOptions(const DatabaseOptions& options) {
  const std::string& driver = options.driver;
  if (driver != "postgres" && driver != "pgx" && driver != "postgresql") {
    throw std::invalid_argument("--db-driver=" + driver +
                                " is not supported: kcache keeps its cache in PostgreSQL "
                                "(use postgres or pgx)");
  }
}

}  // namespace kcache::cmd
