#include "webhook/transport_limits.h"

#include <utility>

namespace kcache::webhook {

ConnectionLimit::ConnectionLimit(std::size_t maxConnections)
    : max_(maxConnections == 0 ? 1 : maxConnections) {}

ConnectionLimit::Admission ConnectionLimit::admit(Evict evict) {
  Evict evictOther;
  Outcome outcome = Outcome::kAdmitted;
  auto entry = std::make_shared<Entry>();
  entry->evict = std::move(evict);
  {
    std::lock_guard lock(mutex_);
    if (entries_.size() >= max_) {
      // The front is the one evictable longest; answering connections are passed over.
      auto victim = entries_.begin();
      while (victim != entries_.end() && (*victim)->answering) ++victim;
      if (victim == entries_.end()) return Admission{Outcome::kRefused, Ticket()};
      (*victim)->evicted = true;
      evictOther = std::move((*victim)->evict);
      entries_.erase(victim);
      outcome = Outcome::kAdmittedAfterEviction;
    }
    entry->position = entries_.insert(entries_.end(), entry);
  }
  if (evictOther) evictOther();
  return Admission{outcome, Ticket(this, std::move(entry))};
}

std::size_t ConnectionLimit::open() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

ConnectionLimit::Ticket::Ticket(Ticket&& other) noexcept
    : limit_(std::exchange(other.limit_, nullptr)), entry_(std::move(other.entry_)) {}

ConnectionLimit::Ticket& ConnectionLimit::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    limit_ = std::exchange(other.limit_, nullptr);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

ConnectionLimit::Ticket::~Ticket() {
  release();
}

void ConnectionLimit::Ticket::release() {
  if (limit_ == nullptr || !entry_) return;
  {
    std::lock_guard lock(limit_->mutex_);
    if (!entry_->evicted) limit_->entries_.erase(entry_->position);
  }
  limit_ = nullptr;
  entry_.reset();
}

bool ConnectionLimit::Ticket::startAnswering() {
  if (limit_ == nullptr) return true;  // not limited
  std::lock_guard lock(limit_->mutex_);
  if (entry_->evicted) return false;
  entry_->answering = true;
  return true;
}

void ConnectionLimit::Ticket::finishAnswering() {
  if (limit_ == nullptr) return;
  std::lock_guard lock(limit_->mutex_);
  if (entry_->evicted) return;
  entry_->answering = false;
  // Waiting again from now: the newest of the evictable.
  limit_->entries_.splice(limit_->entries_.end(), limit_->entries_, entry_->position);
}

LargeBodyGate::LargeBodyGate(std::size_t slots)
    : slots_(slots == 0 ? 1 : slots), available_(slots_) {}

LargeBodyGate::Slot& LargeBodyGate::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    reset();
    gate_ = std::exchange(other.gate_, nullptr);
  }
  return *this;
}

void LargeBodyGate::Slot::reset() {
  if (auto* gate = std::exchange(gate_, nullptr)) gate->release();
}

LargeBodyGate::Slot LargeBodyGate::tryAcquire() {
  std::lock_guard lock(mutex_);
  if (available_ == 0) return Slot();
  --available_;
  return Slot(this);
}

LargeBodyGate::Ticket LargeBodyGate::wait(Grant grant) {
  auto waiter = std::make_shared<Waiter>();
  waiter->grant = std::move(grant);
  {
    std::lock_guard lock(mutex_);
    if (available_ > 0) {
      // Freed since the caller's tryAcquire(): granted at once.
      --available_;
      waiter->done = true;
    } else {
      waiters_.push_back(waiter);
      return waiter;
    }
  }
  auto granted = std::move(waiter->grant);
  granted(Slot(this));
  return waiter;
}

bool LargeBodyGate::cancel(const Ticket& ticket) {
  Grant dropped;  // destroyed outside the lock: it may own the waiting connection
  std::lock_guard lock(mutex_);
  if (!ticket || ticket->done) return false;
  ticket->done = true;
  dropped = std::move(ticket->grant);
  return true;
}

std::size_t LargeBodyGate::available() const {
  std::lock_guard lock(mutex_);
  return available_;
}

void LargeBodyGate::release() {
  Grant grant;
  {
    std::lock_guard lock(mutex_);
    while (!waiters_.empty() && !grant) {
      auto waiter = std::move(waiters_.front());
      waiters_.pop_front();
      if (waiter->done) continue;  // cancelled
      waiter->done = true;
      grant = std::move(waiter->grant);
    }
    if (!grant) {
      ++available_;
      return;
    }
  }
  grant(Slot(this));
}

}  // namespace kcache::webhook
