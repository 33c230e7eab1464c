// Store benchmark: lookup latency and throughput at two table sizes, against the baseline of a
// primary-key SELECT of one row through libpqxx on the same server in the same run; and GC of
// expired entries while lookups continue.
//
// Sizes come from the environment so a quick run is possible:
//   KCACHE_BENCH_SMALL (10000), KCACHE_BENCH_LARGE (1000000) entries,
//   KCACHE_BENCH_EXPIRED (100000) expired entries for GC, KCACHE_BENCH_LOOKUPS (20000) per thread
//   and round, KCACHE_BENCH_ROUNDS (3) alternating rounds of lookup and baseline per size.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/cache_store.h"
#include "store/sql.h"
#include "tests/support/postgres_server.h"

namespace kcache::store {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kThreads = 2;
constexpr int64_t kLoadChunk = 100000;

int64_t envCount(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::max<int64_t>(std::atoll(value), 1);
}

int64_t wallClockSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Probe {
  std::string scopeKey;
  std::string key;
  int64_t id;
};

struct Dataset {
  std::string dsn;
  int64_t entries = 0;
  std::vector<Probe> probes;  // random existing entries to look up
  std::unique_ptr<CacheStore> store;
};

// Rows like the watcher writes them (template and output of typical size), in 20 namespaces,
// recorded within the last hour. Set-based: one INSERT ... SELECT per chunk.
void loadEntries(const std::string& dsn, int64_t from, int64_t count, int64_t startedAt,
                 const std::string& prefix) {
  pqxx::connection connection(dsn);
  const std::string templateText =
      R"({"name":"train","inputs":{"parameters":[{"name":"lr","value":"0.01"}]},)"
      R"("container":{"image":"gcr.io/project/trainer:1.4.2","command":["python","-m",)"
      R"("trainer.task"],"args":["--epochs","10","--lr","{{inputs.parameters.lr}}",)"
      R"("--data","s3://bucket/datasets/2024/train.parquet"],"resources":{}},)"
      R"("outputs":{"artifacts":[{"name":"model","path":"/tmp/outputs/model"}]},)"
      R"("metadata":{"labels":{"pipelines.kubeflow.org/cache_enabled":"true"}}})";
  const std::string outputText =
      R"({"workflows.argoproj.io/outputs":"{\"artifacts\":[{\"name\":\"model\",)"
      R"(\"s3\":{\"key\":\"artifacts/run-123/train/model.tgz\"}}]}"})";
  for (int64_t chunkStart = from; chunkStart < from + count; chunkStart += kLoadChunk) {
    const int64_t chunkEnd = std::min(chunkStart + kLoadChunk, from + count) - 1;
    pqxx::work txn(connection);
    txn.exec_params(R"(
      INSERT INTO execution_caches
        ("ExecutionCacheKey", "ExecutionTemplate", "ExecutionOutput", "MaxCacheStaleness",
         "StartedAtInSec", "EndedAtInSec", "Namespace", "ScopeKey", "PodName", "RunDurationInSec")
      SELECT encode(sha256(convert_to($1 || i, 'UTF8')), 'hex'), $2, $3, -1,
             $4::bigint - i % 3600, $4::bigint - i % 3600,
             'bench-' || i % 20, 'bench-' || i % 20, 'pod-' || i, 60 + i % 600
      FROM generate_series($5::bigint, $6::bigint) AS i)",
                    prefix, templateText, outputText, startedAt, chunkStart, chunkEnd);
    txn.commit();
  }
  pqxx::nontransaction(connection).exec("VACUUM ANALYZE execution_caches");
}

Dataset makeDataset(test_support::PostgresServer& server, int64_t entries, int64_t probes) {
  Dataset dataset;
  dataset.entries = entries;
  dataset.dsn = server.createFreshDatabase("bench");
  StoreOptions options;
  options.dsn = dataset.dsn;
  options.poolSize = 4;
  dataset.store = std::make_unique<CacheStore>(options);
  const auto started = Clock::now();
  loadEntries(dataset.dsn, 0, entries, wallClockSeconds(), "k");
  std::fprintf(stderr, "loaded %lld entries in %.1f s\n", static_cast<long long>(entries),
               std::chrono::duration<double>(Clock::now() - started).count());
  pqxx::connection connection(dataset.dsn);
  pqxx::nontransaction txn(connection);
  std::mt19937_64 random(42);
  std::uniform_int_distribution<int64_t> pick(1, entries);
  std::string ids = "{";
  for (int64_t i = 0; i < probes; ++i) {
    if (i > 0) ids += ',';
    ids += std::to_string(pick(random));
  }
  ids += "}";
  for (const auto& row : txn.exec_params(
           R"(SELECT "ScopeKey", "ExecutionCacheKey", "ID" FROM execution_caches
              WHERE "ID" = ANY($1::bigint[]))",
           ids)) {
    dataset.probes.push_back(
        {row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<int64_t>()});
  }
  std::shuffle(dataset.probes.begin(), dataset.probes.end(), random);
  return dataset;
}

// Latency samples of all threads of one benchmark run; the last thread to finish reports.
class LatencyPool {
 public:
  void reset(int threads) {
    std::lock_guard lock(mutex_);
    samples_.clear();
    remaining_ = threads;
  }
  // Returns true for the last thread, which then owns the percentiles.
  bool add(const std::vector<double>& samples) {
    std::lock_guard lock(mutex_);
    samples_.insert(samples_.end(), samples.begin(), samples.end());
    return --remaining_ == 0;
  }
  double percentile(double p) {
    std::lock_guard lock(mutex_);
    if (samples_.empty()) return 0;
    std::sort(samples_.begin(), samples_.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(samples_.size() - 1));
    return samples_[index];
  }

 private:
  std::mutex mutex_;
  std::vector<double> samples_;
  int remaining_ = 0;
};

struct Figures {
  double p50Us = 0, p99Us = 0, perSecond = 0;
};
std::map<std::string, Figures> gFigures;
std::mutex gFiguresMutex;
std::map<std::string, LatencyPool> gPools;

template <typename Call>
void runLatencyBenchmark(benchmark::State& state, const std::string& name,
                         const std::vector<Probe>& probes, Call&& call) {
  LatencyPool& pool = gPools.at(name);  // created at registration, before threads exist
  if (state.thread_index() == 0) pool.reset(state.threads());
  std::vector<double> samples;
  samples.reserve(state.max_iterations);
  std::size_t next = static_cast<std::size_t>(state.thread_index()) * 7919;
  const auto started = Clock::now();
  for (auto _ : state) {
    const Probe& probe = probes[next++ % probes.size()];
    const auto before = Clock::now();
    call(probe);
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - before).count());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  state.SetItemsProcessed(state.iterations());
  if (pool.add(samples)) {
    Figures figures;
    figures.p50Us = pool.percentile(0.50);
    figures.p99Us = pool.percentile(0.99);
    figures.perSecond = static_cast<double>(state.iterations() * state.threads()) / seconds;
    state.counters["p50_us"] = figures.p50Us;
    state.counters["p99_us"] = figures.p99Us;
    std::lock_guard lock(gFiguresMutex);
    gFigures[name] = figures;
  }
}

// One round: the store's lookup, then the baseline, on the same entries. Rounds alternate so
// that a change in machine load during the run hits both sides alike.
void registerLookupBenchmarks(Dataset& dataset, int64_t lookupsPerThread, int round) {
  const std::string size = std::to_string(dataset.entries) + "/round:" + std::to_string(round);
  gPools["lookup/" + size];
  gPools["direct/" + size];
  gPools["baseline/" + size];
  benchmark::RegisterBenchmark(
      ("store_lookup/entries:" + size).c_str(),
      [&dataset, size](benchmark::State& state) {
        const int64_t now = wallClockSeconds();
        runLatencyBenchmark(state, "lookup/" + size, dataset.probes, [&](const Probe& probe) {
          auto hit =
              dataset.store->lookup(CacheScope::kNamespace, probe.scopeKey, probe.key, -1, now);
          if (!hit) state.SkipWithError("lookup missed an entry that exists");
          benchmark::DoNotOptimize(hit);
        });
      })
      ->Threads(kThreads)
      ->Iterations(lookupsPerThread)
      ->UseRealTime();
  // Diagnostic: the store's lookup statement on a dedicated connection of each thread, without
  // the pool and the deadline machinery, to tell the statement's cost from the client's.
  benchmark::RegisterBenchmark(
      ("direct_lookup_sql/entries:" + size).c_str(),
      [&dataset, size](benchmark::State& state) {
        pqxx::connection connection(dataset.dsn);
        connection.prepare("lookup", sql::kLookup);
        const int64_t now = wallClockSeconds();
        runLatencyBenchmark(state, "direct/" + size, dataset.probes, [&](const Probe& probe) {
          pqxx::nontransaction txn(connection);
          const pqxx::result rows =
              txn.exec_prepared("lookup", probe.scopeKey, probe.key, now, int64_t{-1});
          if (rows.size() != 1) state.SkipWithError("direct lookup found no row");
          benchmark::DoNotOptimize(rows);
        });
      })
      ->Threads(kThreads)
      ->Iterations(lookupsPerThread)
      ->UseRealTime();
  benchmark::RegisterBenchmark(
      ("baseline_pk_select/entries:" + size).c_str(),
      [&dataset, size](benchmark::State& state) {
        pqxx::connection connection(dataset.dsn);
        connection.prepare("by_id", std::string("SELECT ") + sql::kEntryColumns +
                                        R"( FROM execution_caches WHERE "ID" = $1)");
        runLatencyBenchmark(state, "baseline/" + size, dataset.probes, [&](const Probe& probe) {
          pqxx::nontransaction txn(connection);
          const pqxx::result rows = txn.exec_prepared("by_id", probe.id);
          if (rows.size() != 1) state.SkipWithError("primary-key select found no row");
          benchmark::DoNotOptimize(rows);
        });
      })
      ->Threads(kThreads)
      ->Iterations(lookupsPerThread)
      ->UseRealTime();
}

// GC deletes `expired` entries recorded long ago from the large table while two threads keep
// looking up fresh entries.
void registerGcBenchmark(Dataset& dataset, int64_t expired) {
  benchmark::RegisterBenchmark(
      ("store_gc_while_looking_up/expired:" + std::to_string(expired)).c_str(),
      [&dataset, expired](benchmark::State& state) {
        const int64_t now = wallClockSeconds();
        for (auto _ : state) {
          state.PauseTiming();
          loadEntries(dataset.dsn, 0, expired, now - 30 * 86400, "expired");
          state.ResumeTiming();
          std::atomic<bool> done{false};
          std::vector<std::vector<double>> samples(kThreads);
          std::vector<std::thread> readers;
          for (int t = 0; t < kThreads; ++t) {
            readers.emplace_back([&, t] {
              std::size_t next = static_cast<std::size_t>(t) * 7919;
              while (!done.load()) {
                const Probe& probe = dataset.probes[next++ % dataset.probes.size()];
                const auto before = Clock::now();
                try {
                  dataset.store->lookup(CacheScope::kNamespace, probe.scopeKey, probe.key, -1, now);
                } catch (const StoreError& error) {
                  std::fprintf(stderr, "lookup during gc failed: %s\n", error.what());
                }
                samples[t].push_back(
                    std::chrono::duration<double, std::micro>(Clock::now() - before).count());
              }
            });
          }
          const auto started = Clock::now();
          GcOptions gc;
          gc.nowInSec = now;
          gc.maxStalenessSeconds = 86400;
          const GcResult result = dataset.store->gc(gc);
          const double gcSeconds = std::chrono::duration<double>(Clock::now() - started).count();
          done = true;
          for (auto& reader : readers) reader.join();
          std::vector<double> all;
          for (const auto& s : samples) all.insert(all.end(), s.begin(), s.end());
          std::sort(all.begin(), all.end());
          const double p99 =
              all.empty() ? 0 : all[static_cast<std::size_t>(0.99 * double(all.size() - 1))];
          const double p50 =
              all.empty() ? 0 : all[static_cast<std::size_t>(0.50 * double(all.size() - 1))];
          state.counters["gc_s"] = gcSeconds;
          state.counters["deleted"] = static_cast<double>(result.expiredDeleted);
          state.counters["batches"] = static_cast<double>(result.batches);
          state.counters["lookups"] = static_cast<double>(all.size());
          state.counters["lookup_p50_us"] = p50;
          state.counters["lookup_p99_us"] = p99;
          std::lock_guard lock(gFiguresMutex);
          gFigures["gc"] = {p50, p99, static_cast<double>(result.expiredDeleted) / gcSeconds};
          gFigures["gc_seconds"] = {gcSeconds, static_cast<double>(all.size()), 0};
        }
      })
      ->Iterations(1)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Medians over the rounds of each figure.
Figures medianFigures(const std::string& prefix, int rounds) {
  std::vector<double> p50, p99, perSecond;
  for (int round = 0; round < rounds; ++round) {
    const Figures& figures = gFigures[prefix + "/round:" + std::to_string(round)];
    p50.push_back(figures.p50Us);
    p99.push_back(figures.p99Us);
    perSecond.push_back(figures.perSecond);
  }
  return {median(p50), median(p99), median(perSecond)};
}

void printSummary(const std::vector<int64_t>& sizes, int64_t expired, int rounds) {
  std::printf("\nSummary (%d threads; latency in microseconds; medians of %d rounds)\n", kThreads,
              rounds);
  for (int64_t size : sizes) {
    const std::string s = std::to_string(size);
    const Figures lookup = medianFigures("lookup/" + s, rounds);
    const Figures baseline = medianFigures("baseline/" + s, rounds);
    const Figures direct = medianFigures("direct/" + s, rounds);
    std::printf(
        "  %8s entries: lookup p50 %.0f p99 %.0f, %.0f lookups/s | baseline PK select p50 %.0f "
        "p99 %.0f, %.0f/s | lookup throughput = %.0f%% of baseline\n",
        s.c_str(), lookup.p50Us, lookup.p99Us, lookup.perSecond, baseline.p50Us, baseline.p99Us,
        baseline.perSecond,
        baseline.perSecond > 0 ? 100.0 * lookup.perSecond / baseline.perSecond : 0.0);
    std::printf(
        "  %8s entries: (lookup statement on a dedicated connection: p50 %.0f p99 %.0f, %.0f/s)\n",
        s.c_str(), direct.p50Us, direct.p99Us, direct.perSecond);
  }
  if (gFigures.count("gc")) {
    std::printf(
        "  gc: deleted %lld expired entries in %.2f s (%.0f/s) while %d threads looked up: "
        "%.0f lookups, p50 %.0f p99 %.0f\n",
        static_cast<long long>(expired), gFigures["gc_seconds"].p50Us, gFigures["gc"].perSecond,
        kThreads, gFigures["gc_seconds"].p99Us, gFigures["gc"].p50Us, gFigures["gc"].p99Us);
  }
}

}  // namespace
}  // namespace kcache::store

int main(int argc, char** argv) {
  using namespace kcache::store;
  benchmark::Initialize(&argc, argv);
  spdlog::set_level(spdlog::level::warn);
  const int64_t small = envCount("KCACHE_BENCH_SMALL", 10000);
  const int64_t large = envCount("KCACHE_BENCH_LARGE", 1000000);
  const int64_t expired = envCount("KCACHE_BENCH_EXPIRED", 100000);
  const int64_t lookups = envCount("KCACHE_BENCH_LOOKUPS", 20000);
  const int rounds = static_cast<int>(envCount("KCACHE_BENCH_ROUNDS", 3));
  const int64_t probes = std::min<int64_t>(20000, std::min(small, large));

  auto& server = kcache::test_support::PostgresServer::shared();
  std::vector<Dataset> datasets;
  datasets.reserve(2);
  datasets.push_back(makeDataset(server, small, probes));
  datasets.push_back(makeDataset(server, large, probes));
  for (auto& dataset : datasets) {
    for (int round = 0; round < rounds; ++round) registerLookupBenchmarks(dataset, lookups, round);
  }
  registerGcBenchmark(datasets.back(), expired);

  benchmark::RunSpecifiedBenchmarks();
  printSummary({small, large}, expired, rounds);
  benchmark::Shutdown();
  return 0;
}
