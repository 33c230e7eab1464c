// cachectl: the operators' command line over kcache's core and store.
#include "cmd/cachectl/app.h"

int main(int argc, char** argv) {
  return kcache::cachectl::runCachectl(std::vector<std::string>(argv + 1, argv + argc));
}
