// TLS to PostgreSQL, asked for through Kubeflow's --db_extra_params.
#include <gtest/gtest.h>

#include "store/dsn.h"
#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

TEST(StoreTlsTest, SslmodeRequireInTheExtraParamsEncryptsEveryConnection) {
  test_support::PostgresServer server(test_support::PostgresServerOptions{.tls = true});
  const std::string plainDsn = server.createFreshDatabase();
  DatabaseFlags flags;
  flags.host = "127.0.0.1";
  flags.port = server.port();
  flags.dbName = pqxx::connection(plainDsn).dbname();
  flags.user = "postgres";
  flags.extraParams = "sslmode=require";
  StoreOptions options;
  options.dsn = buildDsn(flags);
  CacheStore store(options);
  const int64_t id = store.record(CacheScope::kNamespace, makeEntry(keyOf('t'), "ns", 100));
  const auto hit = store.lookup(CacheScope::kNamespace, "ns", keyOf('t'), -1, 100);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->id, id);

  pqxx::connection observer(plainDsn);
  pqxx::nontransaction txn(observer);
  const pqxx::row sessions = txn.exec1(
      "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a "
      "JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'kcache'");
  EXPECT_GE(sessions[0].as<int>(), 1);
  EXPECT_EQ(sessions[1].as<int>(), sessions[0].as<int>()) << "a kcache session without TLS";
}

}  // namespace
}  // namespace kcache::store::testing
