#pragma once
// A fixed-size pool of PostgreSQL connections. Connections are opened lazily; one that broke is
// dropped together with the idle ones (after a server restart they are all dead), and new
// connection attempts back off exponentially while the server stays unreachable, so callers fail
// fast during an outage instead of each waiting for a connect.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace kcache::store {

struct PoolOptions {
  std::string dsn;
  std::string target;  // description for messages (no password)
  std::size_t size = 4;
  std::chrono::milliseconds backoffInitial{50};
  std::chrono::milliseconds backoffMax{1000};
  // Runs on every new connection (session settings, prepared statements).
  std::function<void(pqxx::connection&)> setup;
};

class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ConnectionPool(PoolOptions options);
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& connection() { return *connection_; }
    // The connection failed: do not return it to the pool.
    void markBroken() { broken_ = true; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> connection_;
    bool broken_ = false;
  };

  // A connection, waiting for a free one at most until `deadline`. Throws StoreError when none
  // frees up in time, or when connecting fails or is backing off after a failure.
  Lease acquire(Clock::time_point deadline);

  // Drops idle connections (they are presumed dead after one of them broke).
  void dropIdle();

 private:
  void giveBack(std::unique_ptr<pqxx::connection> connection, bool broken);
  std::unique_ptr<pqxx::connection> connect();

  PoolOptions options_;
  std::mutex mutex_;
  std::condition_variable released_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::size_t open_ = 0;  // idle + leased + being opened
  Clock::time_point nextConnectAttempt_{};
  std::chrono::milliseconds backoff_{0};
  std::string lastConnectError_;
};

}  // namespace kcache::store
