#pragma once
// The cachectl subcommands; each registers itself on the app and runs in its callback.
#include <CLI/CLI.hpp>

#include "cmd/cachectl/context.h"

namespace kcache::cachectl {

void addKeyCommand(CLI::App& app, const GlobalOptions& global);
void addStatsCommand(CLI::App& app, const GlobalOptions& global);
void addListCommand(CLI::App& app, const GlobalOptions& global);
void addShowCommand(CLI::App& app, const GlobalOptions& global);
void addPurgeCommand(CLI::App& app, const GlobalOptions& global);
void addGcCommand(CLI::App& app, const GlobalOptions& global);
void addExplainCommand(CLI::App& app, const GlobalOptions& global);
void addRecordCommand(CLI::App& app, const GlobalOptions& global);

}  // namespace kcache::cachectl
