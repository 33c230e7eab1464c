#pragma once
// A throwaway PostgreSQL 15 server for tests: initdb in a fresh temporary directory, listening on
// a free port of 127.0.0.1 and on a unix socket inside that directory, removed on destruction.
// The directory is made in $KCACHE_TEST_PG_DIR if set, else in /dev/shm when it has room, else
// /tmp. As root the server runs as the `postgres` user (initdb and postgres refuse root). Anything
// that keeps it from starting throws std::runtime_error carrying the tools' output, so a test run
// fails loudly with the reason instead of skipping.
#include <filesystem>
#include <memory>
#include <string>

namespace kcache::test_support {

// A TCP port on 127.0.0.1 that nothing listens on right now (for servers a test starts).
int findFreePort();

struct PostgresServerOptions {
  bool tls = false;  // also accept TLS, with a throwaway self-signed certificate
};

class PostgresServer {
 public:
  // Runs initdb and starts the server; returns once it accepts connections.
  explicit PostgresServer(PostgresServerOptions options = {});
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // One server per test binary, started on first use and stopped at process exit. Test binaries
  // that only list their tests (gtest_discover_tests) therefore never start PostgreSQL.
  static PostgresServer& shared();

  // libpq keyword/value connection strings (no password: the server trusts local connections).
  std::string connectionString(const std::string& database = "postgres") const;
  std::string socketConnectionString(const std::string& database = "postgres") const;

  // Creates an empty database and returns its connection string. `name` must be a plain
  // identifier ([a-z0-9_]); createFreshDatabase() picks a unique one, so tests do not share state.
  std::string createDatabase(const std::string& name);
  std::string createFreshDatabase(const std::string& prefix = "test");

  // For tests of outages: stop() shuts the server down (fast mode: open sessions are cut),
  // start() brings it back on the same port and data directory.
  void stop();
  void start();
  bool running() const { return running_; }

  int port() const { return port_; }
  const std::filesystem::path& directory() const { return root_; }
  std::string serverLog() const;

 private:
  void enableTls();

  std::filesystem::path root_;  // temporary directory holding data/, the socket and the log
  std::filesystem::path dataDir_;
  std::filesystem::path logFile_;
  int port_ = 0;
  bool running_ = false;
  int databaseCounter_ = 0;
};

}  // namespace kcache::test_support
