#pragma once
// cachectl as a function, so that tests run the real command line in-process.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cmd/cachectl/context.h"

namespace kcache::cachectl {

// Parses `arguments` (without the program name) and runs the subcommand. Output goes to
// std::cout, the one-line error of a failure to std::cerr; returns the exit code.
int runCachectl(const std::vector<std::string>& arguments);

// Registers the global flags (into `global`, which must outlive the parse) and every subcommand,
// each running in its callback, on `app`: the command line runCachectl parses.
void addCachectlCommands(CLI::App& app, GlobalOptions& global);

}  // namespace kcache::cachectl
