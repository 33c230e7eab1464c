#include "cmd/common/database_options.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace kcache::cmd {

void addDatabaseOptions(CLI::App& app, DatabaseOptions& options) {
  app.add_option("--db-driver,--db_driver", options.driver,
                 "Database driver: postgres (pgx and postgresql are accepted as the same); "
                 "kcache stores its cache in PostgreSQL only")
      ->envname("DBCONFIG_DRIVER")
      ->capture_default_str();
  app.add_option("--db-host,--db_host", options.flags.host, "PostgreSQL host name")
      ->envname("DBCONFIG_HOST_NAME")
      ->capture_default_str();
  app.add_option("--db-port,--db_port", options.flags.port, "PostgreSQL port")
      ->envname("DBCONFIG_PORT")
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

std::vector<std::string> normalizeGoStyleArguments(int argc, const char* const* argv) {
  std::vector<std::string> arguments;
  for (int i = 0; i < argc; ++i) {
    std::string argument = argv[i];
    // "-db_host=x" or "-db_host": one dash and a name longer than one letter (Go's flag package).
    const auto nameEnd = std::min(argument.find('='), argument.size());
    if (i > 0 && argument.size() > 2 && argument[0] == '-' &&
        std::isalpha(static_cast<unsigned char>(argument[1])) && nameEnd > 2) {
      argument.insert(0, "-");
    }
    arguments.push_back(std::move(argument));
  }
  return arguments;
}

}  // namespace kcache::cmd
