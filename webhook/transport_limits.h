#pragma once
// Two bounds the server keeps under load or attack, each a small thread-safe object:
//
// ConnectionLimit: at most N open connections on a port. At the cap a new connection pushes out
// the one that has gone longest without a request being answered (in its handshake, idle, or
// sending a request slowly): idle connections, however many an attacker opens, never keep
// kube-apiserver out. Only when every connection is answering a request is the new one refused
// (closed at once: kube-apiserver then admits the pod untouched at once, rather than after its
// timeout, as failurePolicy Ignore says).
//
// LargeBodyGate: at most N request bodies above a size are read and decoded at a time, so many
// large reviews at once cannot exhaust a replica's memory. A request waits for a slot for a
// bounded time; the server answers one that gets none "allowed, untouched".
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <utility>

namespace kcache::webhook {

class ConnectionLimit {
  struct Entry;

 public:
  // Called, outside the limit's lock, for a connection pushed out: it must only post the closing
  // to the connection's own executor.
  using Evict = std::function<void()>;

  // A connection's place; released when destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

    // The connection has a complete request to answer: it is not pushed out until
    // finishAnswering(). False when it was pushed out already (it should close).
    bool startAnswering();
    // Answered: from now it waits for (or reads) its next request and may be pushed out.
    void finishAnswering();

   private:
    friend class ConnectionLimit;
    Ticket(ConnectionLimit* limit, std::shared_ptr<Entry> entry)
        : limit_(limit), entry_(std::move(entry)) {}
    void release();
    ConnectionLimit* limit_ = nullptr;
    std::shared_ptr<Entry> entry_;
  };

  enum class Outcome { kAdmitted, kAdmittedAfterEviction, kRefused };
  struct Admission {
    Outcome outcome;
    Ticket ticket;  // empty when refused
  };

  explicit ConnectionLimit(std::size_t maxConnections);

  // A new connection; `evict` is how to close it should it be pushed out later.
  Admission admit(Evict evict);
  std::size_t open() const;
  std::size_t maxConnections() const { return max_; }

 private:
  struct Entry {
    Evict evict;
    bool answering = false;
    bool evicted = false;
    std::list<std::shared_ptr<Entry>>::iterator position;  // valid unless evicted
  };
  mutable std::mutex mutex_;
  // Oldest first by the time each entered its evictable state (admitted, or done answering).
  std::list<std::shared_ptr<Entry>> entries_;
  std::size_t max_;
};

class LargeBodyGate {
  struct Waiter;

 public:
  // A slot; released when destroyed (or handed straight to the first waiter).
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { reset(); }
    explicit operator bool() const { return gate_ != nullptr; }
    void reset();

   private:
    friend class LargeBodyGate;
    explicit Slot(LargeBodyGate* gate) : gate_(gate) {}
    LargeBodyGate* gate_ = nullptr;
  };

  using Grant = std::function<void(Slot)>;
  using Ticket = std::shared_ptr<Waiter>;

  explicit LargeBodyGate(std::size_t slots);

  // A slot now, or an empty one when all are taken.
  Slot tryAcquire();
  // Queues `grant`, called once with a slot by whichever thread frees one first, unless
  // cancel() came before. `grant` must only post work to its own executor.
  Ticket wait(Grant grant);
  // True when the waiter was still queued: it will never be granted.
  bool cancel(const Ticket& ticket);

  std::size_t available() const;
  std::size_t slots() const { return slots_; }

 private:
  struct Waiter {
    Grant grant;
    bool done = false;
  };
  void release();

  mutable std::mutex mutex_;
  std::size_t slots_;
  std::size_t available_;
  std::deque<Ticket> waiters_;
};

}  // namespace kcache::webhook
