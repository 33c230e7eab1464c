#pragma once
// The execution cache (docs/store.md): interfaces the webhook and the watcher code against,
// and CacheStore, their PostgreSQL implementation over the Kubeflow Pipelines table.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/execution_key.h"

namespace kcache::store {

// kNamespace: an entry is recorded for, and found only by, its own namespace, under the
// namespace-bound key of Kubeflow 2.18 (so Kubeflow 2.18 and kcache read each other's entries).
// kCluster: one entry per template-only key shared by all namespaces, as Kubeflow <= 2.17 does;
// rows Kubeflow <= 2.17 wrote (no namespace) are cluster entries. The two never mix: their keys
// differ for every template (docs/execution-key.md).
enum class CacheScope { kNamespace, kCluster };  // namespace scope is the default

// The key each scope stores and looks up.
constexpr core::KeyBinding keyBindingOf(CacheScope scope) {
  return scope == CacheScope::kNamespace ? core::KeyBinding::kNamespaceBound
                                         : core::KeyBinding::kTemplateOnly;
}

// KFP_SECURITY_LEGACY_CACHE_MODE, as Kubeflow 2.18 reads it. kAudit: in namespace scope, after a
// genuine miss, a namespace-less row written before 2.18 under the template-only key may be
// reused (never rewritten), and each such reuse is reported as an ownership_unknown finding.
enum class LegacyCacheMode { kEnforce, kAudit };

struct CacheEntry {
  int64_t id = 0;
  std::string key;            // 64 hex chars
  std::string namespaceName;  // "" for legacy rows written by Kubeflow
  std::string podName;
  std::string executionTemplate;   // raw ARGO_TEMPLATE
  std::string executionOutput;     // Kubeflow's JSON (core::encodeExecutionOutput)
  int64_t maxCacheStaleness = -1;  // seconds, negative = no limit
  int64_t startedAtInSec = 0;
  int64_t endedAtInSec = 0;
  int64_t runDurationSeconds = 0;
  int64_t hitCount = 0;
  std::optional<int64_t> lastHitAtInSec;
};

struct NewEntry {
  std::string key, namespaceName, podName, executionTemplate, executionOutput;
  int64_t maxCacheStaleness = -1;
  int64_t runDurationSeconds = 0;
  int64_t recordedAtInSec = 0;  // "now" of the recorder: StartedAtInSec = EndedAtInSec = this
};

class StoreError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the webhook needs. Implementations enforce their own deadline and throw StoreError
// (with context) on failure or timeout; callers treat any exception as "no cache hit".
class CacheLookup {
 public:
  virtual ~CacheLookup() = default;
  virtual std::optional<CacheEntry> lookup(CacheScope scope, std::string_view namespaceName,
                                           std::string_view key, int64_t podStalenessSeconds,
                                           int64_t nowInSec) = 0;
  // Audit mode only: a row without a namespace (written by Kubeflow before 2.18) under the
  // template-only `legacyKey`, fresh by the same rules. Never remembered, never hit-counted.
  virtual std::optional<CacheEntry> lookupLegacy(std::string_view legacyKey,
                                                 int64_t podStalenessSeconds, int64_t nowInSec) = 0;
  // Hit accounting, must not block the caller on the database (queued, written in batches).
  virtual void noteHit(int64_t entryId, int64_t nowInSec) = 0;
};

// What record() did with the entry of a key.
enum class RecordOutcome {
  kInserted,  // there was no entry: the record is the entry now
  kReplaced,  // the entry was stale (or written by the same pod) and the record replaced it
  // A fresh entry of another pod, or a newer one, holds the key: nothing changed, and the id is
  // the existing entry's. A repeated or forged record of a fresh step ends here.
  kKept,
};
std::string_view toString(RecordOutcome outcome);

struct RecordResult {
  int64_t entryId = 0;
  RecordOutcome outcome = RecordOutcome::kInserted;
};

// What the watcher needs. First fresh writer wins: a newer record replaces the entry of its
// (scope, namespace, key) only when that entry is no longer fresh under its own recorded
// staleness (capped by StoreOptions::maximumStalenessSeconds), came from the same pod (namespace
// and pod name), or cannot be replayed (no outputs, unreadable) while the record can; otherwise
// the existing entry stays and its id is returned.
class CacheRecorder {
 public:
  virtual ~CacheRecorder() = default;
  virtual RecordResult recordEntry(CacheScope scope, const NewEntry& entry) = 0;
  // The entry id only, for callers that do not care whether the record changed anything.
  int64_t record(CacheScope scope, const NewEntry& entry) {
    return recordEntry(scope, entry).entryId;
  }
};

struct StoreOptions {
  std::string dsn;  // libpq connection string, see buildDsn() in store/dsn.h
  std::size_t poolSize = 4;
  // Deadline of one lookup, end to end: waiting for a connection, then the query
  // (statement_timeout on the server). During an outage lookups fail at once instead of waiting.
  std::chrono::milliseconds lookupTimeout{500};
  std::chrono::milliseconds writeTimeout{5000};        // record, hit flushes, stats
  std::chrono::milliseconds gcBatchTimeout{30000};     // one GC batch
  std::chrono::milliseconds migrationTimeout{600000};  // the whole schema migration
  std::chrono::milliseconds hitFlushInterval{1000};
  std::size_t hitBatchSize = 1000;      // entries per UPDATE of hit counters
  std::size_t maxPendingHits = 100000;  // distinct entries queued; beyond that hits are dropped
  std::chrono::milliseconds reconnectBackoffInitial{50};
  std::chrono::milliseconds reconnectBackoffMax{1000};
  bool migrateOnOpen = true;  // run the schema migrations in the constructor
  // MAXIMUM_CACHE_STALENESS in seconds (negative: not set). record() judges whether an existing
  // entry is still fresh under its own staleness capped by this, so an entry recorded with a huge
  // (or no) staleness is replaceable once it is older than the operator's maximum.
  int64_t maximumStalenessSeconds = -1;
};

struct GcOptions {
  int64_t nowInSec = 0;
  // Entries recorded more than this many seconds before now are deleted (an entry exactly this
  // old survives, as in Kubeflow). Negative: no age limit.
  int64_t maxStalenessSeconds = -1;
  // Keep at most this many entries, evicting the least recently hit (never hit: oldest) first.
  std::optional<int64_t> maxEntries;
  int64_t batchSize = 1000;  // rows per DELETE, each its own short transaction
};

struct GcResult {
  int64_t expiredDeleted = 0;
  int64_t evictedDeleted = 0;
  int64_t batches = 0;
};

struct NamespaceStats {
  std::string namespaceName;  // "" for legacy rows
  int64_t entries = 0;
  int64_t hits = 0;
};

struct StoreStats {
  int64_t entries = 0;
  int64_t totalHits = 0;
  int64_t computeSecondsSaved = 0;  // sum of hits x run duration
  std::optional<int64_t> oldestEntryAtInSec;
  std::optional<int64_t> newestEntryAtInSec;
  int64_t tableBytes = 0;  // table, indexes and TOAST on disk
  std::vector<NamespaceStats> perNamespace;
  int64_t pendingHits = 0;  // queued, not yet written
  int64_t droppedHits = 0;  // lost because the queue was full or a flush failed for good
};

// Selects entries for operators (cachectl list, show, purge). Unset fields select everything.
struct EntryFilter {
  std::optional<int64_t> id;
  std::optional<std::string> key;            // the whole execution key
  std::string keyPrefix;                     // lower-case hex the key starts with
  std::optional<std::string> namespaceName;  // "" selects legacy rows without a namespace
  std::optional<int64_t> recordedBefore;     // StartedAtInSec < this
  std::optional<int64_t> recordedAfter;      // StartedAtInSec > this
};

// The PostgreSQL cache store. Thread-safe; one instance per process.
class CacheStore : public CacheLookup, public CacheRecorder {
 public:
  explicit CacheStore(StoreOptions options);
  ~CacheStore() override;  // flushes queued hits (bounded by writeTimeout)
  CacheStore(const CacheStore&) = delete;
  CacheStore& operator=(const CacheStore&) = delete;

  std::optional<CacheEntry> lookup(CacheScope scope, std::string_view namespaceName,
                                   std::string_view key, int64_t podStalenessSeconds,
                                   int64_t nowInSec) override;
  std::optional<CacheEntry> lookupLegacy(std::string_view legacyKey, int64_t podStalenessSeconds,
                                         int64_t nowInSec) override;
  void noteHit(int64_t entryId, int64_t nowInSec) override;
  RecordResult recordEntry(CacheScope scope, const NewEntry& entry) override;

  // Applies the pending schema migrations under an advisory lock; returns how many it applied.
  int migrate();
  // One round trip within lookupTimeout (readiness checks); throws StoreError when unreachable.
  void ping();
  // Writes the queued hits now (the background flusher does this every hitFlushInterval).
  void flushHits();
  GcResult gc(const GcOptions& options);
  StoreStats stats();
  // --- Admission stamps (issue 13) ---
  // The admission stamp secret kept in the database: `candidate` is stored when there is none
  // yet (the first server wins a race), and the stored one is returned either way.
  std::string sharedAdmissionSecret(const std::string& candidate);

  // Operators' queries, never on the admission path: entries in id order after `afterId`, at
  // most `limit` of them; how many match; deleting those that match (returns how many went).
  std::vector<CacheEntry> listEntries(const EntryFilter& filter, int64_t afterId, int64_t limit);
  int64_t countEntries(const EntryFilter& filter);
  int64_t purgeEntries(const EntryFilter& filter);
  // "user@host:port/db", never the password.
  const std::string& target() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kcache::store
