#include "store/cache_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>
#include <unordered_map>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "store/connection_pool.h"
#include "store/deadline_watchdog.h"
#include "store/dsn.h"
#include "store/migrations.h"
#include "store/sql.h"

namespace kcache::store {
namespace {

using Clock = std::chrono::steady_clock;
// Bounds how long the pool's connector may hang on a host that does not answer (callers never
// wait for it longer than their own deadline).
constexpr int kDefaultConnectTimeoutSeconds = 5;

std::string describeRequest(std::string_view what, CacheScope scope, std::string_view ns,
                            std::string_view key) {
  std::string text = "store " + std::string(what) + " for key " + core::keyPreview(key);
  text += scope == CacheScope::kCluster ? " (cluster scope)" : " in namespace " + std::string(ns);
  return text;
}

// The namespace a lookup must match: the pod's in namespace scope, any ('') in cluster scope.
std::string requiredNamespace(CacheScope scope, std::string_view ns, const std::string& request) {
  if (scope == CacheScope::kCluster) return "";
  if (ns.empty()) throw StoreError(request + ": namespace scope needs a namespace");
  return std::string(ns);
}

CacheEntry toEntry(const pqxx::row& row) {
  CacheEntry entry;
  entry.id = row[0].as<int64_t>();
  entry.key = row[1].as<std::string>();
  entry.namespaceName = row[2].as<std::string>();
  entry.podName = row[3].as<std::string>();
  entry.executionTemplate = row[4].as<std::string>();
  entry.executionOutput = row[5].as<std::string>();
  entry.maxCacheStaleness = row[6].as<int64_t>();
  entry.startedAtInSec = row[7].as<int64_t>();
  entry.endedAtInSec = row[8].as<int64_t>();
  entry.runDurationSeconds = row[9].as<int64_t>();
  entry.hitCount = row[10].as<int64_t>();
  if (!row[11].is_null()) entry.lastHitAtInSec = row[11].as<int64_t>();
  return entry;
}

// Whether a lookup could replay this ExecutionOutput: readable, with outputs (the webhook treats
// anything else as a miss, see webhook/decision.cpp interpretLookup).
bool isReplayable(std::string_view executionOutput) {
  const auto outputs = core::decodeExecutionOutput(executionOutput);
  return outputs && !outputs->argoOutputs.empty();
}

StoreOptions withBoundedConnect(StoreOptions options) {
  options.dsn = withConnectTimeout(options.dsn, kDefaultConnectTimeoutSeconds);
  return options;
}

struct PendingHit {
  int64_t count = 0;
  int64_t lastAtInSec = 0;
};
using PendingHits = std::unordered_map<int64_t, PendingHit>;

}  // namespace

class CacheStore::Impl {
 public:
  explicit Impl(StoreOptions options)
      : options_(withBoundedConnect(std::move(options))),
        target_(describeDsn(options_.dsn)),
        password_(passwordOf(options_.dsn)),
        pool_(PoolOptions{options_.dsn, target_, options_.poolSize,
                          options_.reconnectBackoffInitial, options_.reconnectBackoffMax,
                          [this](pqxx::connection& connection) { setUp(connection); }}) {}

  ~Impl() { stopFlusher(); }

  void startFlusher() {
    flusher_ = std::thread([this] { flushLoop(); });
  }

  void stopFlusher() {
    {
      std::lock_guard lock(hitMutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    hitWake_.notify_all();
    if (flusher_.joinable()) flusher_.join();
    try {
      flushHits();
    } catch (const std::exception& error) {
      spdlog::warn("store: could not write queued hits at shutdown: {}", error.what());
    }
  }

  int migrate() {
    try {
      pqxx::connection connection(options_.dsn);
      return applyMigrations(connection, options_.migrationTimeout);
    } catch (const std::exception& error) {
      throw StoreError("store migration on " + target_ + " failed: " + scrub(error.what()));
    }
  }

  std::optional<CacheEntry> lookup(CacheScope scope, std::string_view ns, std::string_view key,
                                   int64_t podStaleness, int64_t now) {
    const std::string request = describeRequest("lookup", scope, ns, key);
    const std::string namespaceName = requiredNamespace(scope, ns, request);
    if (podStaleness == 0) return std::nullopt;  // caching disabled for this pod
    const std::string keyText(key);
    return withConnection(request, options_.lookupTimeout, [&](pqxx::connection& connection) {
      pqxx::nontransaction txn(connection);
      const pqxx::result rows =
          txn.exec_prepared("kcache_lookup", keyText, now, podStaleness, namespaceName);
      return rows.empty() ? std::nullopt : std::optional<CacheEntry>(toEntry(rows[0]));
    });
  }

  std::optional<CacheEntry> lookupLegacy(std::string_view key, int64_t podStaleness, int64_t now) {
    const std::string request =
        "store lookup of a namespace-less legacy row for key " + core::keyPreview(key);
    if (podStaleness == 0) return std::nullopt;
    const std::string keyText(key);
    return withConnection(request, options_.lookupTimeout, [&](pqxx::connection& connection) {
      pqxx::nontransaction txn(connection);
      const pqxx::result rows =
          txn.exec_prepared("kcache_lookup_legacy", keyText, now, podStaleness);
      return rows.empty() ? std::nullopt : std::optional<CacheEntry>(toEntry(rows[0]));
    });
  }

  RecordResult record(CacheScope scope, const NewEntry& entry) {
    const std::string request = describeRequest("record", scope, entry.namespaceName, entry.key);
    const std::string owner = requiredNamespace(scope, entry.namespaceName, request);
    if (entry.key.empty()) throw StoreError(request + ": empty key");
    // Between a refused upsert and reading the existing id, GC may delete the row: try again.
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::optional<RecordResult> result =
          withConnection(request, options_.writeTimeout, [&](pqxx::connection& connection) {
            pqxx::work txn(connection);
            setLocalTimeout(txn, options_.writeTimeout);
            const pqxx::result written = txn.exec_prepared(
                "kcache_upsert", entry.key, entry.executionTemplate, entry.executionOutput,
                entry.maxCacheStaleness, entry.recordedAtInSec, entry.namespaceName, entry.podName,
                entry.runDurationSeconds, owner, options_.maximumStalenessSeconds);
            if (!written.empty()) {
              txn.commit();
              return std::optional<RecordResult>(RecordResult{
                  written[0][0].as<int64_t>(),
                  written[0][1].as<bool>() ? RecordOutcome::kInserted : RecordOutcome::kReplaced});
            }
            const pqxx::result existing = txn.exec_prepared("kcache_existing_id", entry.key);
            if (existing.empty()) return std::optional<RecordResult>();
            const int64_t existingId = existing[0][0].as<int64_t>();
            if (!owner.empty() && existing[0][1].as<std::string>() != owner) {
              throw StoreError(request + ": the key already belongs to an entry of namespace " +
                               existing[0][1].as<std::string>());
            }
            // An entry no lookup can replay (no outputs, or unreadable) is as good as none: a
            // newer record with outputs replaces it, or the step would run forever uncached.
            RecordOutcome outcome = RecordOutcome::kKept;
            if (!isReplayable(existing[0][2].as<std::string>()) &&
                isReplayable(entry.executionOutput) &&
                existing[0][3].as<int64_t>() < entry.recordedAtInSec) {
              txn.exec_prepared("kcache_replace_by_id", existingId, entry.executionTemplate,
                                entry.executionOutput, entry.maxCacheStaleness,
                                entry.recordedAtInSec, entry.namespaceName, entry.podName,
                                entry.runDurationSeconds);
              outcome = RecordOutcome::kReplaced;
            }
            txn.commit();
            return std::optional<RecordResult>(RecordResult{existingId, outcome});
          });
      if (result) return *result;
    }
    throw StoreError(request + ": the entry kept disappearing while being recorded");
  }

  void noteHit(int64_t entryId, int64_t now) {
    std::unique_lock lock(hitMutex_);
    auto found = pendingHits_.find(entryId);
    if (found == pendingHits_.end()) {
      if (pendingHits_.size() >= options_.maxPendingHits) {
        ++droppedHits_;
        return;
      }
      found = pendingHits_.emplace(entryId, PendingHit{}).first;
    }
    found->second.count += 1;
    found->second.lastAtInSec = std::max(found->second.lastAtInSec, now);
    const bool full = pendingHits_.size() >= options_.hitBatchSize;
    lock.unlock();
    if (full) hitWake_.notify_one();
  }

  void flushHits() {
    PendingHits batch;
    {
      std::lock_guard lock(hitMutex_);
      batch.swap(pendingHits_);
    }
    if (batch.empty()) return;
    std::vector<int64_t> ids, counts, lasts;
    auto writeChunk = [&] {
      const std::string idArray = sql::arrayLiteral(ids), countArray = sql::arrayLiteral(counts),
                        lastArray = sql::arrayLiteral(lasts);
      withConnection("store hit flush", options_.writeTimeout, [&](pqxx::connection& connection) {
        pqxx::work txn(connection);
        setLocalTimeout(txn, options_.writeTimeout);
        txn.exec_prepared("kcache_hits", idArray, countArray, lastArray);
        txn.commit();
        return 0;
      });
    };
    auto it = batch.begin();
    try {
      while (it != batch.end()) {
        ids.clear(), counts.clear(), lasts.clear();
        auto chunkEnd = it;
        for (std::size_t n = 0; chunkEnd != batch.end() && n < options_.hitBatchSize;
             ++chunkEnd, ++n) {
          ids.push_back(chunkEnd->first);
          counts.push_back(chunkEnd->second.count);
          lasts.push_back(chunkEnd->second.lastAtInSec);
        }
        writeChunk();
        it = chunkEnd;
      }
    } catch (...) {
      requeue(it, batch.end());
      throw;
    }
  }

  GcResult gc(const GcOptions& gcOptions) {
    GcResult result;
    const int64_t batchSize = std::max<int64_t>(gcOptions.batchSize, 1);
    auto deleteBatch = [&](const std::string& statement, auto... args) {
      ++result.batches;
      return withConnection("store gc", options_.gcBatchTimeout, [&](pqxx::connection& connection) {
        pqxx::work txn(connection);
        setLocalTimeout(txn, options_.gcBatchTimeout);
        const auto rows = txn.exec_prepared(statement, args...);
        txn.commit();
        return static_cast<int64_t>(rows.affected_rows());
      });
    };
    if (gcOptions.maxStalenessSeconds >= 0) {
      const int64_t cutoff = gcOptions.nowInSec - gcOptions.maxStalenessSeconds;
      for (;;) {
        const int64_t deleted = deleteBatch("kcache_gc_expired", cutoff, batchSize);
        result.expiredDeleted += deleted;
        if (deleted < batchSize) break;
      }
    }
    if (gcOptions.maxEntries) {
      int64_t excess = countEntries() - std::max<int64_t>(*gcOptions.maxEntries, 0);
      while (excess > 0) {
        const int64_t deleted = deleteBatch("kcache_gc_evict", std::min(excess, batchSize));
        if (deleted == 0) break;
        result.evictedDeleted += deleted;
        excess -= deleted;
      }
    }
    spdlog::info("store: gc deleted {} expired and {} evicted entries in {} batches",
                 result.expiredDeleted, result.evictedDeleted, result.batches);
    return result;
  }

  StoreStats stats() {
    StoreStats stats =
        withConnection("store stats", options_.writeTimeout, [&](pqxx::connection& connection) {
          StoreStats s;
          pqxx::work txn(connection);
          setLocalTimeout(txn, options_.writeTimeout);
          const pqxx::row totals = txn.exec1(R"(
            SELECT count(*), COALESCE(sum("HitCount"), 0),
                   COALESCE(sum("HitCount" * "RunDurationInSec"), 0),
                   min("StartedAtInSec"), max("StartedAtInSec"),
                   pg_total_relation_size('execution_caches')
            FROM execution_caches)");
          s.entries = totals[0].as<int64_t>();
          s.totalHits = totals[1].as<int64_t>();
          s.computeSecondsSaved = totals[2].as<int64_t>();
          if (!totals[3].is_null()) s.oldestEntryAtInSec = totals[3].as<int64_t>();
          if (!totals[4].is_null()) s.newestEntryAtInSec = totals[4].as<int64_t>();
          s.tableBytes = totals[5].as<int64_t>();
          for (const auto& row : txn.exec(R"(
                 SELECT "Namespace", count(*), COALESCE(sum("HitCount"), 0)
                 FROM execution_caches GROUP BY "Namespace" ORDER BY "Namespace")")) {
            s.perNamespace.push_back(
                {row[0].as<std::string>(), row[1].as<int64_t>(), row[2].as<int64_t>()});
          }
          txn.commit();
          return s;
        });
    std::lock_guard lock(hitMutex_);
    for (const auto& [id, hit] : pendingHits_) stats.pendingHits += hit.count;
    stats.droppedHits = droppedHits_;
    return stats;
  }

  const std::string& target() const { return target_; }

  std::string sharedAdmissionSecret(const std::string& candidate) {
    return withConnection(
        "store admission secret", options_.writeTimeout, [&](pqxx::connection& connection) {
          pqxx::work txn(connection);
          setLocalTimeout(txn, options_.writeTimeout);
          txn.exec_params(
              "INSERT INTO kcache_admission_secret (id, secret) VALUES (1, $1) "
              "ON CONFLICT (id) DO NOTHING",
              candidate);
          auto secret = txn.exec1("SELECT secret FROM kcache_admission_secret WHERE id = 1")[0]
                            .as<std::string>();
          txn.commit();
          return secret;
        });
  }

  void ping() {
    withConnection("store ping", options_.lookupTimeout, [](pqxx::connection& connection) {
      pqxx::nontransaction(connection).exec("SELECT 1");
      return 0;
    });
  }

  // Runs a filtered operator statement; `extra` are the parameters after the filter's eleven.
  template <typename... Extra>
  pqxx::result filtered(const std::string& request, const char* statement, const EntryFilter& f,
                        Extra... extra) {
    return withConnection(request, options_.writeTimeout, [&](pqxx::connection& connection) {
      pqxx::work txn(connection);
      setLocalTimeout(txn, options_.writeTimeout);
      pqxx::result rows = txn.exec_prepared(
          statement, f.id.has_value(), f.id.value_or(0), f.key.has_value(), f.key.value_or(""),
          f.keyPrefix, f.namespaceName.has_value(), f.namespaceName.value_or(""),
          f.recordedBefore.has_value(), f.recordedBefore.value_or(0), f.recordedAfter.has_value(),
          f.recordedAfter.value_or(0), extra...);
      txn.commit();
      return rows;
    });
  }

 private:
  void setUp(pqxx::connection& connection) {
    // The session default bounds lookups, which run outside a transaction; writes raise it with
    // SET LOCAL.
    pqxx::nontransaction txn(connection);
    txn.exec("SET statement_timeout = " +
             std::to_string(serverTimeout(options_.lookupTimeout).count()));
    txn.exec("SET application_name = 'kcache'");
    connection.prepare("kcache_lookup", sql::kLookup);
    connection.prepare("kcache_lookup_legacy", sql::kLookupLegacy);
    connection.prepare("kcache_upsert", sql::kUpsert);
    connection.prepare("kcache_existing_id", sql::kExistingId);
    connection.prepare("kcache_replace_by_id", sql::kReplaceById);
    connection.prepare("kcache_hits", sql::kHits);
    connection.prepare("kcache_gc_expired", sql::kGcExpired);
    connection.prepare("kcache_list_entries", sql::kListEntries);
    connection.prepare("kcache_count_entries", sql::kCountEntries);
    connection.prepare("kcache_purge_entries", sql::kPurgeEntries);
    connection.prepare("kcache_gc_evict", sql::kGcEvict);
  }

  static void setLocalTimeout(pqxx::transaction_base& txn, std::chrono::milliseconds timeout) {
    txn.exec("SET LOCAL statement_timeout = " + std::to_string(serverTimeout(timeout).count()));
  }

  std::string scrub(const std::string& message) const { return oneLineError(message, password_); }

  // Runs `work` on a pooled connection within `timeout` (from now), mapping every failure to a
  // StoreError that names the request. A connection that turns out to be dead (typically after
  // a server restart) is replaced once while time remains.
  template <typename Work>
  auto withConnection(const std::string& request, std::chrono::milliseconds timeout, Work&& work)
      -> decltype(work(std::declval<pqxx::connection&>())) {
    const auto deadline = Clock::now() + timeout;
    for (int attempt = 0;; ++attempt) {
      ConnectionPool::Lease lease = [&] {
        try {
          return pool_.acquire(deadline);
        } catch (const StoreError& error) {
          throw StoreError(request + " failed: " + scrub(error.what()));
        }
      }();
      const DeadlineWatchdog::Guard guard = watchdog_.watch(lease.connection().sock(), deadline);
      try {
        return work(lease.connection());
      } catch (const StoreError&) {
        throw;
      } catch (const std::exception& error) {
        if (guard.fired()) {
          lease.markBroken();
          throw StoreError(request + " timed out after " + std::to_string(timeout.count()) +
                           " ms (no answer from PostgreSQL at " + target_ + ")");
        }
        if (const auto* sqlError = dynamic_cast<const pqxx::sql_error*>(&error);
            sqlError != nullptr && sqlError->sqlstate() == "57014") {
          throw StoreError(request + " timed out after " + std::to_string(timeout.count()) + " ms");
        }
        if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) {
          lease.markBroken();
          if (attempt == 0 && Clock::now() < deadline) continue;
          throw StoreError(request + " failed: lost the connection to PostgreSQL at " + target_ +
                           ": " + scrub(error.what()));
        }
        if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr) {
          lease.markBroken();
          throw StoreError(request + " failed (outcome unknown): " + scrub(error.what()));
        }
        throw StoreError(request + " failed: " + scrub(error.what()));
      }
    }
  }

  // The server's statement_timeout fires a little before the client-side deadline, so a slow
  // query is cancelled cleanly and its connection kept; the watchdog is the backstop.
  static std::chrono::milliseconds serverTimeout(std::chrono::milliseconds deadline) {
    return deadline - std::min(std::chrono::milliseconds(50), deadline / 10);
  }

  int64_t countEntries() {
    return withConnection("store gc count", options_.gcBatchTimeout, [&](pqxx::connection& c) {
      pqxx::work txn(c);
      setLocalTimeout(txn, options_.gcBatchTimeout);
      const int64_t count = txn.exec1("SELECT count(*) FROM execution_caches")[0].as<int64_t>();
      txn.commit();
      return count;
    });
  }

  void requeue(PendingHits::const_iterator from, PendingHits::const_iterator to) {
    std::lock_guard lock(hitMutex_);
    for (; from != to; ++from) {
      auto found = pendingHits_.find(from->first);
      if (found == pendingHits_.end()) {
        if (pendingHits_.size() >= options_.maxPendingHits) {
          droppedHits_ += from->second.count;
          continue;
        }
        found = pendingHits_.emplace(from->first, PendingHit{}).first;
      }
      found->second.count += from->second.count;
      found->second.lastAtInSec = std::max(found->second.lastAtInSec, from->second.lastAtInSec);
    }
  }

  void flushLoop() {
    std::unique_lock lock(hitMutex_);
    while (!stopping_) {
      hitWake_.wait_for(lock, options_.hitFlushInterval, [this] {
        return stopping_ || pendingHits_.size() >= options_.hitBatchSize;
      });
      if (stopping_ || pendingHits_.empty()) continue;
      lock.unlock();
      try {
        flushHits();
      } catch (const std::exception& error) {
        spdlog::warn("store: writing hit counters failed, will retry: {}", error.what());
        // Do not spin on a dead database: the next try waits for the interval.
        lock.lock();
        hitWake_.wait_for(lock, options_.hitFlushInterval, [this] { return stopping_; });
        continue;
      }
      lock.lock();
    }
  }

  StoreOptions options_;
  std::string target_;
  std::string password_;
  ConnectionPool pool_;
  DeadlineWatchdog watchdog_;

  std::mutex hitMutex_;
  std::condition_variable hitWake_;
  PendingHits pendingHits_;
  int64_t droppedHits_ = 0;
  bool stopping_ = false;
  std::thread flusher_;
};

CacheStore::CacheStore(StoreOptions options) {
  const bool migrateNow = options.migrateOnOpen;
  impl_ = std::make_unique<Impl>(std::move(options));
  if (migrateNow) impl_->migrate();
  impl_->startFlusher();
}

CacheStore::~CacheStore() = default;

std::optional<CacheEntry> CacheStore::lookup(CacheScope scope, std::string_view namespaceName,
                                             std::string_view key, int64_t podStalenessSeconds,
                                             int64_t nowInSec) {
  return impl_->lookup(scope, namespaceName, key, podStalenessSeconds, nowInSec);
}

std::optional<CacheEntry> CacheStore::lookupLegacy(std::string_view legacyKey,
                                                   int64_t podStalenessSeconds, int64_t nowInSec) {
  return impl_->lookupLegacy(legacyKey, podStalenessSeconds, nowInSec);
}

void CacheStore::noteHit(int64_t entryId, int64_t nowInSec) {
  impl_->noteHit(entryId, nowInSec);
}

RecordResult CacheStore::recordEntry(CacheScope scope, const NewEntry& entry) {
  return impl_->record(scope, entry);
}

std::string_view toString(RecordOutcome outcome) {
  switch (outcome) {
    case RecordOutcome::kInserted:
      return "inserted";
    case RecordOutcome::kReplaced:
      return "replaced a stale entry";
    case RecordOutcome::kKept:
      return "kept the fresh entry already there";
  }
  return "unknown";
}

int CacheStore::migrate() {
  return impl_->migrate();
}
void CacheStore::ping() {
  impl_->ping();
}
void CacheStore::flushHits() {
  impl_->flushHits();
}
GcResult CacheStore::gc(const GcOptions& options) {
  return impl_->gc(options);
}
StoreStats CacheStore::stats() {
  return impl_->stats();
}
std::string CacheStore::sharedAdmissionSecret(const std::string& candidate) {
  return impl_->sharedAdmissionSecret(candidate);
}
std::vector<CacheEntry> CacheStore::listEntries(const EntryFilter& filter, int64_t afterId,
                                                int64_t limit) {
  std::vector<CacheEntry> entries;
  for (const auto& row :
       impl_->filtered("store list", "kcache_list_entries", filter, afterId, limit)) {
    entries.push_back(toEntry(row));
  }
  return entries;
}
int64_t CacheStore::countEntries(const EntryFilter& filter) {
  return impl_->filtered("store count", "kcache_count_entries", filter)[0][0].as<int64_t>();
}
int64_t CacheStore::purgeEntries(const EntryFilter& filter) {
  const auto rows = impl_->filtered("store purge", "kcache_purge_entries", filter);
  spdlog::info("store: purged {} entries", rows.affected_rows());
  return static_cast<int64_t>(rows.affected_rows());
}
const std::string& CacheStore::target() const {
  return impl_->target();
}

}  // namespace kcache::store
