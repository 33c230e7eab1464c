#include "store/dsn.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace kcache::store {
namespace {

TEST(DsnTest, BuildsAQuotedKeywordValueString) {
  DatabaseFlags flags;
  flags.host = "db.example";
  flags.port = 6543;
  flags.dbName = "cache";
  flags.user = "kc";
  flags.password = "it's \\ secret";
  EXPECT_EQ(buildDsn(flags),
            "host='db.example' port=6543 dbname='cache' user='kc' password='it\\'s \\\\ secret' "
            "connect_timeout=2");
}

TEST(DsnTest, ExtraParamsAcceptPairsAndJson) {
  DatabaseFlags flags;
  flags.extraParams = "sslmode=verify-full&sslrootcert=/etc/ca.pem,connect_timeout=5";
  const std::string pairs = buildDsn(flags);
  EXPECT_NE(pairs.find(" sslmode='verify-full'"), std::string::npos) << pairs;
  EXPECT_NE(pairs.find(" sslrootcert='/etc/ca.pem'"), std::string::npos) << pairs;
  EXPECT_NE(pairs.find(" connect_timeout='5'"), std::string::npos) << pairs;
  EXPECT_EQ(pairs.find("connect_timeout=2"), std::string::npos) << pairs;

  flags.extraParams = R"({"sslmode": "require", "keepalives": 1})";
  const std::string json = buildDsn(flags);
  EXPECT_NE(json.find(" sslmode='require'"), std::string::npos) << json;
  EXPECT_NE(json.find(" keepalives='1'"), std::string::npos) << json;
}

TEST(DsnTest, MalformedExtraParamsAreRejectedWithoutThePassword) {
  DatabaseFlags flags;
  flags.password = "hunter2";
  for (const char* bad : {"sslmode", "SSL=1", "{\"a\": [1]}", "{not json", "password=x"}) {
    flags.extraParams = bad;
    try {
      buildDsn(flags);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& error) {
      EXPECT_EQ(std::string(error.what()).find("hunter2"), std::string::npos);
    }
  }
}

TEST(DsnTest, DescriptionNeverShowsThePassword) {
  DatabaseFlags flags;
  flags.host = "pg";
  flags.user = "kc";
  flags.password = "hunter2";
  flags.extraParams = "sslmode=require";
  const std::string dsn = buildDsn(flags);
  EXPECT_EQ(describeDsn(dsn), "kc@pg:5432/cachedb (sslmode=require)");
  EXPECT_EQ(passwordOf(dsn), "hunter2");
  EXPECT_EQ(describeDsn("postgresql://u:hunter2@h:1/d"), "u@h:1/d");
  EXPECT_EQ(describeDsn("host='unterminated hunter2"), "<unparsable connection string>");
}

TEST(DsnTest, RedactReplacesEveryOccurrence) {
  EXPECT_EQ(redact("a pw b pw", "pw"), "a *** b ***");
  EXPECT_EQ(redact("nothing", ""), "nothing");
}

}  // namespace
}  // namespace kcache::store

namespace kcache::store {
namespace {

TEST(DsnTest, ErrorsBecomeOneRedactedLine) {
  EXPECT_EQ(oneLineError("connection failed: pw\n\tIs the server running?\n", "pw"),
            "connection failed: *** Is the server running?");
}

}  // namespace
}  // namespace kcache::store

namespace kcache::store {
namespace {

TEST(DsnTest, ConnectTimeoutIsAddedUnlessPresent) {
  EXPECT_EQ(withConnectTimeout("host=h dbname=d", 5), "host=h dbname=d connect_timeout=5");
  EXPECT_EQ(withConnectTimeout("host=h connect_timeout=9", 5), "host=h connect_timeout=9");
  EXPECT_EQ(withConnectTimeout("postgresql://u@h/d", 5), "postgresql://u@h/d?connect_timeout=5");
  EXPECT_EQ(withConnectTimeout("postgresql://u@h/d?sslmode=require", 5),
            "postgresql://u@h/d?sslmode=require&connect_timeout=5");
}

}  // namespace
}  // namespace kcache::store

namespace kcache::store {
namespace {

TEST(UnverifiedServerWarning, NamesANetworkDatabaseWhoseCertificateIsNotVerified) {
  const auto prefer = unverifiedServerWarning("host=pg.databases.svc port=5432", nullptr);
  ASSERT_TRUE(prefer);
  EXPECT_NE(prefer->find("pg.databases.svc"), std::string::npos);
  EXPECT_NE(prefer->find("sslmode=prefer"), std::string::npos) << "libpq's default";
  EXPECT_TRUE(unverifiedServerWarning("host=10.0.0.7 sslmode=require", nullptr));
  EXPECT_TRUE(unverifiedServerWarning("host=db sslmode=disable password=secret", nullptr));
  EXPECT_EQ(unverifiedServerWarning("host=db password=secret", nullptr)->find("secret"),
            std::string::npos);
  // PGSSLMODE counts when the string sets no sslmode, never over it.
  EXPECT_FALSE(unverifiedServerWarning("host=db", "verify-full"));
  EXPECT_TRUE(unverifiedServerWarning("host=db sslmode=require", "verify-full"));
}

TEST(UnverifiedServerWarning, IsSilentForVerifiedOrLocalConnections) {
  EXPECT_FALSE(unverifiedServerWarning("host=db sslmode=verify-full sslrootcert=/ca.pem", nullptr));
  EXPECT_FALSE(unverifiedServerWarning("host=db sslmode=verify-ca", nullptr));
  EXPECT_FALSE(unverifiedServerWarning("host=localhost", nullptr));
  EXPECT_FALSE(unverifiedServerWarning("host=127.0.0.1 sslmode=disable", nullptr));
  EXPECT_FALSE(unverifiedServerWarning("host=::1", nullptr));
  EXPECT_FALSE(unverifiedServerWarning("host=/var/run/postgresql", nullptr));
  EXPECT_FALSE(unverifiedServerWarning("dbname=x", nullptr)) << "libpq's default: a Unix socket";
  EXPECT_FALSE(unverifiedServerWarning("host='unterminated", nullptr));
}

}  // namespace
}  // namespace kcache::store
