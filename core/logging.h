#pragma once
// Process-wide logging setup. Components log through spdlog's default logger directly
// (spdlog::info(...)), one line per event; this chooses the format and the level, and offers the
// two tools for logging what a client sent: logValue() and LogRateLimiter.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kcache::core {

enum class LogFormat { kText, kJson };

// Configures spdlog's default logger to write to stderr. `level` is one of trace, debug, info,
// warn, error, critical, off (case-insensitive); an unknown level throws std::invalid_argument.
// JSON lines look like {"ts":"2026-01-02T03:04:05.678Z","level":"info","msg":"..."}.
// Whatever a message holds, it stays one line: in either format control characters (newlines,
// ANSI escape sequences, C1 controls, bidirectional overrides) are written escaped, and a message
// longer than kMaxLogMessageBytes is cut there with a note of how much was left out.
void configureLogging(LogFormat format, const std::string& level);

// Parses "text" or "json" (case-insensitive); throws std::invalid_argument otherwise.
LogFormat parseLogFormat(const std::string& text);

inline constexpr std::size_t kMaxLogMessageBytes = 4096;
inline constexpr std::size_t kMaxLogValueBytes = 256;

// A value a client chose (a pod name, an apiVersion, a path, a header), made safe to put in a log
// line: backslash, double quote, control characters, C1 controls, bidirectional overrides and
// bytes that are not UTF-8 are written as escapes (\n, \", \x1b, \u202e, ...), and the value is
// cut after `maxBytes` bytes of input (at a character boundary) with "…(+N bytes)".
std::string logValue(std::string_view value, std::size_t maxBytes = kMaxLogValueBytes);

// Lets through at most `burst` events per `window`; an event let through after others were
// held back learns how many were (to say "and N more like it"). Thread-safe. For warnings a
// client can trigger at will, so that a flood of bad requests cannot flood the log.
class LogRateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  LogRateLimiter(std::size_t burst, std::chrono::milliseconds window, Clock clock = {});

  // nullopt: hold this one back. Otherwise log it; the value is the number held back since the
  // last one let through.
  std::optional<std::uint64_t> admit();

  // " (N similar messages suppressed)" or "" for admit()'s value.
  static std::string suppressedNote(std::uint64_t suppressed);

 private:
  std::size_t burst_;
  std::chrono::milliseconds window_;
  Clock clock_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point windowStart_{};
  std::size_t inWindow_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace kcache::core
