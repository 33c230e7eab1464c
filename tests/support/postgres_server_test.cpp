#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "tests/support/postgres_server.h"

namespace kcache::test_support {
namespace {

int selectOne(const std::string& connectionString) {
  pqxx::connection connection(connectionString);
  pqxx::nontransaction txn(connection);
  return txn.exec1("SELECT 1")[0].as<int>();
}

TEST(PostgresServerTest, FreshDatabasesAreReachableOverTcpAndSocket) {
  auto& server = PostgresServer::shared();
  const std::string first = server.createFreshDatabase();
  const std::string second = server.createFreshDatabase();
  EXPECT_NE(first, second);
  EXPECT_EQ(selectOne(first), 1);
  EXPECT_EQ(selectOne(server.socketConnectionString()), 1);
  EXPECT_TRUE(std::filesystem::exists(server.directory() / "data" / "PG_VERSION"));
}

TEST(PostgresServerTest, StopCutsConnectionsAndStartBringsTheServerBack) {
  PostgresServer server;
  const std::string dsn = server.createFreshDatabase();
  pqxx::connection open(dsn);
  server.stop();
  EXPECT_FALSE(server.running());
  EXPECT_THROW(selectOne(dsn), pqxx::broken_connection);
  EXPECT_THROW(pqxx::nontransaction(open).exec("SELECT 1"), pqxx::broken_connection);
  server.start();
  EXPECT_EQ(selectOne(dsn), 1);
}

TEST(PostgresServerTest, DestructionRemovesEverything) {
  std::filesystem::path directory;
  {
    PostgresServer server;
    directory = server.directory();
    EXPECT_TRUE(std::filesystem::exists(directory));
  }
  EXPECT_FALSE(std::filesystem::exists(directory));
}

TEST(PostgresServerTest, ServersOfDeadTestProcessesAreReaped) {
  // A child starts a server and dies without cleaning up, like a test binary killed on timeout.
  const std::filesystem::path handOver =
      std::filesystem::temp_directory_path() / ("kcache-reap-" + std::to_string(::getpid()));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      auto* abandoned = new PostgresServer();  // never destroyed, on purpose
      std::ofstream(handOver) << abandoned->directory().string();
      _exit(0);
    } catch (...) {
      _exit(1);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::string abandonedDirectory;
  std::ifstream(handOver) >> abandonedDirectory;
  std::filesystem::remove(handOver);
  ASSERT_FALSE(abandonedDirectory.empty());
  ASSERT_TRUE(std::filesystem::exists(abandonedDirectory + "/data/postmaster.pid"));

  PostgresServer next;
  EXPECT_FALSE(std::filesystem::exists(abandonedDirectory));
}

}  // namespace
}  // namespace kcache::test_support
