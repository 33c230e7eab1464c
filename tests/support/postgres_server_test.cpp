#include <gtest/gtest.h>

#include <filesystem>
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

}  // namespace
}  // namespace kcache::test_support
