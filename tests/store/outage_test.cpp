// Deadlines, outages and reconnecting, against a server of the test's own.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "store/dsn.h"
#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
constexpr int64_t kT = 1'700'000'000;

std::string lookupError(CacheStore& store) {
  try {
    store.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT);
  } catch (const StoreError& error) {
    return error.what();
  }
  return "";
}

TEST(StoreOutageTest, LookupsFailFastDuringAnOutageAndRecoverAfterRestart) {
  test_support::PostgresServer server;
  StoreOptions options;
  options.dsn = server.createFreshDatabase();
  options.lookupTimeout = milliseconds(500);
  options.hitFlushInterval = std::chrono::hours(1);  // flushes only when the test says so
  CacheStore store(options);
  const int64_t id = store.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT));
  ASSERT_TRUE(store.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT));

  EXPECT_NO_THROW(store.ping());
  server.stop();
  EXPECT_THROW(store.ping(), StoreError);
  for (int i = 0; i < 5; ++i) {
    const auto started = Clock::now();
    const std::string error = lookupError(store);
    const auto elapsed = Clock::now() - started;
    EXPECT_NE(error.find("store lookup for key aaaaaaaaaaaa"), std::string::npos) << error;
    EXPECT_NE(error.find("PostgreSQL"), std::string::npos) << error;
    EXPECT_LT(elapsed, options.lookupTimeout) << "lookup did not fail within its deadline";
  }
  store.noteHit(id, kT);  // queues; never touches the database on the caller's thread
  EXPECT_THROW(store.flushHits(), StoreError);  // the hit stays queued for the next flush

  server.start();
  const auto restarted = Clock::now();
  std::optional<CacheEntry> hit;
  while (!hit && Clock::now() - restarted < std::chrono::seconds(5)) {
    try {
      hit = store.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT);
    } catch (const StoreError&) {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  ASSERT_TRUE(hit) << "lookups did not work again within 5 s of the restart";
  EXPECT_EQ(hit->id, id);
  EXPECT_EQ(store.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT)), id);
  store.flushHits();
  EXPECT_EQ(store.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT)->hitCount, 1);
}

TEST_F(StoreTest, SlowLookupTimesOutWithAClearError) {
  StoreOptions opts = options();
  opts.lookupTimeout = milliseconds(200);
  CacheStore store(opts);
  store.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT));
  {
    // An exclusive lock makes every read of the table wait: the server-side deadline fires.
    pqxx::connection blocker(dsn_);
    pqxx::work txn(blocker);
    txn.exec("LOCK TABLE execution_caches IN ACCESS EXCLUSIVE MODE");
    const std::string error = lookupError(store);
    EXPECT_NE(error.find("store lookup for key aaaaaaaaaaaa"), std::string::npos) << error;
    EXPECT_NE(error.find("in namespace team-a timed out after 200 ms"), std::string::npos) << error;
  }
  EXPECT_TRUE(store.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT));
}

// Freezes the server processes serving kcache's sessions for the guard's lifetime: the server
// then neither answers nor cancels, as with a network partition.
class FrozenBackends {
 public:
  explicit FrozenBackends(const std::string& dsn) {
    pqxx::connection admin(dsn);
    pqxx::nontransaction txn(admin);
    for (const auto& row :
         txn.exec("SELECT pid FROM pg_stat_activity WHERE application_name = 'kcache'")) {
      pids_.push_back(row[0].as<int>());
    }
    for (int pid : pids_) ::kill(pid, SIGSTOP);
  }
  ~FrozenBackends() {
    for (int pid : pids_) ::kill(pid, SIGCONT);
  }
  std::size_t size() const { return pids_.size(); }

 private:
  std::vector<int> pids_;
};

TEST_F(StoreTest, LookupGivesUpOnAServerThatStopsAnswering) {
  StoreOptions opts = options();
  opts.lookupTimeout = milliseconds(300);
  opts.poolSize = 1;
  CacheStore store(opts);
  store.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT));
  std::string error;
  {
    FrozenBackends frozen(dsn_);
    ASSERT_EQ(frozen.size(), 1u);
    error = lookupError(store);  // without the client-side bound this would never return
  }
  EXPECT_NE(error.find("in namespace team-a timed out after 300 ms (no answer from PostgreSQL"),
            std::string::npos)
      << error;
  // The abandoned connection is replaced transparently.
  EXPECT_TRUE(store.lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT));
}

// A TCP port that completes handshakes (the kernel's backlog) but never answers: connecting to
// PostgreSQL there hangs until connect_timeout.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot open a silent listener");
    }
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(StoreDeadlineTest, LookupDoesNotWaitForAConnectionThatHangs) {
  SilentListener silent;
  StoreOptions options;
  options.dsn = "host=127.0.0.1 port=" + std::to_string(silent.port()) +
                " user=kcache dbname=cachedb connect_timeout=2";
  options.migrateOnOpen = false;
  options.lookupTimeout = milliseconds(300);
  CacheStore store(options);
  const auto started = Clock::now();
  const std::string error = lookupError(store);
  const auto elapsed = Clock::now() - started;
  EXPECT_NE(error.find("did not finish within the deadline"), std::string::npos) << error;
  // Waiting for the connect itself would take connect_timeout (2 s).
  EXPECT_LT(elapsed, milliseconds(1500));
}

TEST_F(StoreTest, ConnectionsBuiltFromKubeflowFlagsWork) {
  const auto& server = test_support::PostgresServer::shared();
  DatabaseFlags flags;
  flags.host = "127.0.0.1";
  flags.port = server.port();
  flags.dbName = pqxx::connection(dsn_).dbname();
  flags.user = "postgres";
  flags.password = "unused by trust auth 'quoted' \\";
  flags.extraParams = "sslmode=disable&application_name=kcache-test";
  StoreOptions opts = options();
  opts.dsn = buildDsn(flags);
  CacheStore store(opts);
  const int64_t id = store.record(CacheScope::kNamespace, makeEntry(keyOf('a'), "ns", kT));
  const auto hit = store.lookup(CacheScope::kNamespace, "ns", keyOf('a'), -1, kT);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->id, id);
  EXPECT_EQ(store.target(), "postgres@127.0.0.1:" + std::to_string(server.port()) + "/" +
                                flags.dbName + " (sslmode=disable)");
}

TEST_F(StoreTest, TlsIsRequestedWhenTheExtraParamsAskForIt) {
  DatabaseFlags flags;
  flags.host = "127.0.0.1";
  flags.port = test_support::PostgresServer::shared().port();
  flags.dbName = "postgres";
  flags.extraParams = "sslmode=require";
  StoreOptions opts = options();
  opts.dsn = buildDsn(flags);
  try {
    CacheStore store(opts);
    FAIL() << "the test server has no TLS, so sslmode=require must refuse to connect";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("SSL"), std::string::npos) << error.what();
  }
}

TEST(StoreErrorTest, ThePasswordNeverAppearsInErrors) {
  DatabaseFlags flags;
  flags.host = "127.0.0.1";
  flags.port = 1;  // nothing listens there
  flags.user = "kcache";
  flags.password = "Sup3r-Secret-pw";
  StoreOptions options;
  options.dsn = buildDsn(flags);
  try {
    CacheStore store(options);
    FAIL() << "connecting to a closed port must fail";
  } catch (const StoreError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find("Sup3r-Secret-pw"), std::string::npos) << message;
    EXPECT_NE(message.find("kcache@127.0.0.1:1/cachedb"), std::string::npos) << message;
  }
  options.migrateOnOpen = false;
  CacheStore store(options);
  const std::string message = lookupError(store);
  EXPECT_NE(message, "");
  EXPECT_EQ(message.find("Sup3r-Secret-pw"), std::string::npos) << message;
}

}  // namespace
}  // namespace kcache::store::testing
