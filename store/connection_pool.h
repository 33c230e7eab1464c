#pragma once
// A fixed-size pool of PostgreSQL connections. Connections are opened lazily, by a connector
// thread of the pool's own: a caller waits for one at most until its deadline, even when
// connecting hangs (an unreachable host), and a connection it gave up on still joins the pool.
// One that broke is dropped together with the idle ones (after a server restart they are all
// dead), and connection attempts back off exponentially while the server stays unreachable, so
// callers fail fast during an outage instead of each waiting for a connect.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
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
  ~ConnectionPool();
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

 private:
  void giveBack(std::unique_ptr<pqxx::connection> connection, bool broken);
  std::unique_ptr<pqxx::connection> connect();
  void connectLoop();

  PoolOptions options_;
  std::mutex mutex_;
  std::condition_variable released_;  // a connection became idle, or connecting failed
  std::condition_variable wanted_;    // wakes the connector
  struct Idle {
    std::unique_ptr<pqxx::connection> connection;
    std::thread::id lastUser;
  };
  // A thread gets back the connection it used last when that one is idle: the server process
  // behind it stays warm, instead of connections hopping between threads on every query.
  std::vector<Idle> idle_;
  std::size_t open_ = 0;       // idle + leased + requested from the connector
  std::size_t requested_ = 0;  // connections the connector still has to open
  uint64_t connectFailures_ = 0;
  Clock::time_point nextConnectAttempt_{};
  std::chrono::milliseconds backoff_{0};
  std::string lastConnectError_;
  bool stopping_ = false;
  std::thread connector_;  // last: starts once everything above exists
};

}  // namespace kcache::store
