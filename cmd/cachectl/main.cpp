// cachectl: the operators' command line over kcache's core and store.
#include "cmd/cachectl/app.h"
#include "cmd/common/secret_arguments.h"

int main(int argc, char** argv) {
  std::vector<std::string> arguments(argv + 1, argv + argc);
  // A password given as a flag is not left in /proc/<pid>/cmdline while the command runs.
  kcache::cmd::hideSecretArguments(argc, argv);
  return kcache::cachectl::runCachectl(arguments);
}
