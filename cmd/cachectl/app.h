#pragma once
// cachectl as a function, so that tests run the real command line in-process.
#include <string>
#include <vector>

namespace kcache::cachectl {

// Parses `arguments` (without the program name) and runs the subcommand. Output goes to
// std::cout, the one-line error of a failure to std::cerr; returns the exit code.
int runCachectl(const std::vector<std::string>& arguments);

}  // namespace kcache::cachectl
