#pragma once
// Builds a libpq connection string from Kubeflow-style flags (--db_host, --db_port, --db_name,
// --db_user, --db_password, --db_extra_params) and describes one without its password.
#include <optional>
#include <string>
#include <string_view>

namespace kcache::store {

struct DatabaseFlags {
  std::string host = "localhost";
  int port = 5432;
  std::string dbName = "cachedb";
  std::string user = "postgres";
  std::string password;
  // Extra libpq parameters such as "sslmode=require": "key=value" pairs separated by '&', ',',
  // ';' or spaces, or a JSON object {"sslmode": "verify-full", "sslrootcert": "/ca.pem"}.
  std::string extraParams;
};

// Throws std::invalid_argument (never quoting the password) for malformed extra parameters.
std::string buildDsn(const DatabaseFlags& flags);

// `dsn` with connect_timeout=`seconds` added unless it sets one (keyword/value or URI form):
// without it, connecting to a host that does not answer waits for the TCP stack (minutes).
std::string withConnectTimeout(const std::string& dsn, int seconds);

// "user@host:port/db" (plus sslmode when set) for logs and errors; never the password.
std::string describeDsn(std::string_view dsn);

// --- Secrets stay secret (issue 13) ---
// A warning when the connection to a database reached over the network does not verify the
// server's certificate (sslmode other than verify-ca / verify-full, PGSSLMODE when the string sets
// none): whoever can intercept that traffic can then read the password and the cached outputs.
// nullopt for a loopback host or a Unix socket, where there is no network path to intercept.
// `environmentSslMode` is PGSSLMODE's value (nullptr when unset).
std::optional<std::string> unverifiedServerWarning(std::string_view dsn,
                                                   const char* environmentSslMode);

// The password a connection string carries, or "" (used to scrub it from error messages).
std::string passwordOf(std::string_view dsn);

// Replaces every occurrence of `secret` in `message` by "***".
std::string redact(std::string message, std::string_view secret);

// A libpq/libpqxx error message fit for one log line: redacted, runs of whitespace (libpq's
// messages span lines) collapsed to one space, trimmed.
std::string oneLineError(const std::string& message, std::string_view secret);

}  // namespace kcache::store
