// cachectl: the operators' command line over kcache's core and store.
#include "cmd/cachectl/app.h"
#include "cmd/common/database_options.h"

int main(int argc, char** argv) {
  auto arguments = kcache::cmd::normalizeGoStyleArguments(argc, argv);
  arguments.erase(arguments.begin());  // the program name
  return kcache::cachectl::runCachectl(arguments);
}
