#pragma once
// Prometheus-style metrics without a client library: counters, gauges and histograms kept in one
// registry per process, rendered in the text exposition format 0.0.4 for GET /metrics.
// All metric objects are thread-safe; references handed out stay valid for the registry's lifetime.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace kcache::core {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  // Negative increments are ignored: a counter only goes up.
  void inc(double by = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // Upper bounds are sorted and deduplicated; +Inf is implicit.
  explicit Histogram(std::vector<double> upperBounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> upperBounds;
    std::vector<uint64_t> cumulativeCounts;  // one per bound, then one for +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> upperBounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> bucketCounts_;  // non-cumulative, last is +Inf
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Default latency buckets in seconds, from 100 µs to 5 s.
std::vector<double> latencyBucketsSeconds();

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Asking twice for the same name and labels returns the same object. Asking for a name that is
  // already registered as another type throws std::logic_error (a programming error).
  Counter& counter(const std::string& name, const std::string& help,
                   const MetricLabels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> upperBounds, const MetricLabels& labels = {});

  std::string renderPrometheusText() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::map<MetricLabels, std::unique_ptr<Counter>> counters;
    std::map<MetricLabels, std::unique_ptr<Gauge>> gauges;
    std::map<MetricLabels, std::unique_ptr<Histogram>> histograms;
  };
  Family& family(const std::string& name, const std::string& help, Type type);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace kcache::core
