#pragma once
// Process-wide logging setup. Components log through spdlog's default logger directly
// (spdlog::info(...)), one line per event; this only chooses the format and the level.
#include <string>

namespace kcache::core {

enum class LogFormat { kText, kJson };

// Configures spdlog's default logger to write to stderr. `level` is one of trace, debug, info,
// warn, error, critical, off (case-insensitive); an unknown level throws std::invalid_argument.
// JSON lines look like {"ts":"2026-01-02T03:04:05.678Z","level":"info","msg":"..."}.
void configureLogging(LogFormat format, const std::string& level);

// Parses "text" or "json" (case-insensitive); throws std::invalid_argument otherwise.
LogFormat parseLogFormat(const std::string& text);

}  // namespace kcache::core
