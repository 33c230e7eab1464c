#pragma once
// The client-side half of a query deadline. statement_timeout bounds a query the server is
// working on; it cannot help when the server or the network stops answering. The watchdog shuts
// down the socket of a query that outlives its deadline, so the blocked caller gets an error at
// once (the connection is then discarded).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace kcache::store {

class DeadlineWatchdog {
 public:
  using Clock = std::chrono::steady_clock;

  DeadlineWatchdog();
  ~DeadlineWatchdog();
  DeadlineWatchdog(const DeadlineWatchdog&) = delete;
  DeadlineWatchdog& operator=(const DeadlineWatchdog&) = delete;

  // Watches `socket` until destroyed; the socket must stay open for the guard's lifetime.
  class Guard {
   public:
    Guard(Guard&& other) noexcept : watchdog_(other.watchdog_), id_(other.id_) {
      other.watchdog_ = nullptr;
    }
    Guard& operator=(Guard&&) = delete;
    ~Guard();
    // Whether the deadline passed and the socket was shut down.
    bool fired() const;

   private:
    friend class DeadlineWatchdog;
    Guard(DeadlineWatchdog* watchdog, uint64_t id) : watchdog_(watchdog), id_(id) {}
    DeadlineWatchdog* watchdog_;
    uint64_t id_;
  };

  Guard watch(int socket, Clock::time_point deadline);

 private:
  struct Watched {
    int socket;
    Clock::time_point deadline;
    bool fired = false;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, Watched> watched_;
  uint64_t nextId_ = 1;
  Clock::time_point wakeAt_ = Clock::time_point::max();  // when the thread wakes up next
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kcache::store
