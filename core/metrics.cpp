#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace kcache::core {

namespace {

void atomicAdd(std::atomic<double>& target, double by) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

// Prometheus wants Go-like float text: integers without a fraction, +Inf/-Inf/NaN spelled out.
std::string formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  // Shortest text that reads back as the same double (0.005, not 0.0050000000000000001).
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string escapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string renderLabels(const MetricLabels& labels, const std::string& extraName = {},
                         const std::string& extraValue = {}) {
  if (labels.empty() && extraName.empty()) return {};
  std::string out = "{";
  bool first = true;
  auto append = [&](const std::string& name, const std::string& value) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += escapeLabelValue(value);
    out += '"';
  };
  for (const auto& [name, value] : labels) append(name, value);
  if (!extraName.empty()) append(extraName, extraValue);
  out += '}';
  return out;
}

}  // namespace

void Counter::inc(double by) {
  if (!(by > 0)) return;
  atomicAdd(value_, by);
}

void Gauge::add(double by) {
  atomicAdd(value_, by);
}

Histogram::Histogram(std::vector<double> upperBounds) : upperBounds_(std::move(upperBounds)) {
  std::sort(upperBounds_.begin(), upperBounds_.end());
  upperBounds_.erase(std::unique(upperBounds_.begin(), upperBounds_.end()), upperBounds_.end());
  upperBounds_.erase(std::remove_if(upperBounds_.begin(), upperBounds_.end(),
                                    [](double b) { return std::isnan(b) || std::isinf(b); }),
                     upperBounds_.end());
  bucketCounts_ = std::make_unique<std::atomic<uint64_t>[]>(upperBounds_.size() + 1);
  for (size_t i = 0; i <= upperBounds_.size(); ++i) bucketCounts_[i].store(0);
}

void Histogram::observe(double v) {
  // Buckets are "less than or equal": the first bound >= v.
  const auto it = std::lower_bound(upperBounds_.begin(), upperBounds_.end(), v);
  const auto index = static_cast<size_t>(it - upperBounds_.begin());
  bucketCounts_[index].fetch_add(1, std::memory_order_relaxed);
  atomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.upperBounds = upperBounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= upperBounds_.size(); ++i) {
    running += bucketCounts_[i].load(std::memory_order_relaxed);
    snap.cumulativeCounts.push_back(running);
  }
  // The total is the bucket sum so that the +Inf bucket and _count always agree in one scrape.
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

std::vector<double> latencyBucketsSeconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
}

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help,
                                                 Type type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type) {
    throw std::logic_error("metric " + name + " is already registered with another type");
  }
  return it->second;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = family(name, help, Type::kCounter).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = family(name, help, Type::kGauge).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> upperBounds, const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = family(name, help, Type::kHistogram).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(upperBounds));
  return *slot;
}

std::string MetricsRegistry::renderPrometheusText() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    out += "# HELP " + name + ' ' + escapeHelp(fam.help) + '\n';
    switch (fam.type) {
      case Type::kCounter:
        out += "# TYPE " + name + " counter\n";
        for (const auto& [labels, metric] : fam.counters) {
          out += name + renderLabels(labels) + ' ' + formatValue(metric->value()) + '\n';
        }
        break;
      case Type::kGauge:
        out += "# TYPE " + name + " gauge\n";
        for (const auto& [labels, metric] : fam.gauges) {
          out += name + renderLabels(labels) + ' ' + formatValue(metric->value()) + '\n';
        }
        break;
      case Type::kHistogram:
        out += "# TYPE " + name + " histogram\n";
        for (const auto& [labels, metric] : fam.histograms) {
          const auto snap = metric->snapshot();
          for (size_t i = 0; i < snap.upperBounds.size(); ++i) {
            out += name + "_bucket" + renderLabels(labels, "le", formatValue(snap.upperBounds[i])) +
                   ' ' + std::to_string(snap.cumulativeCounts[i]) + '\n';
          }
          out += name + "_bucket" + renderLabels(labels, "le", "+Inf") + ' ' +
                 std::to_string(snap.count) + '\n';
          out += name + "_sum" + renderLabels(labels) + ' ' + formatValue(snap.sum) + '\n';
          out += name + "_count" + renderLabels(labels) + ' ' + std::to_string(snap.count) + '\n';
        }
        break;
    }
  }
  return out;
}

}  // namespace kcache::core
