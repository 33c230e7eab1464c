#include "cmd/cachectl/app.h"

#include <algorithm>
#include <iostream>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"

namespace kcache::cachectl {

int runCachectl(const std::vector<std::string>& arguments) {
  CLI::App app{
      "cachectl: inspect and maintain the kcache step cache.\n"
      "Database flags are cache-server's (also from DBCONFIG_* variables); they may come before "
      "or\n"
      "after the subcommand. Kubeflow's spellings (--db_host, -db_host) are accepted too.",
      "cachectl"};
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions global;
  addGlobalOptions(app, global);
  addKeyCommand(app, global);
  addStatsCommand(app, global);
  addListCommand(app, global);
  addShowCommand(app, global);
  addPurgeCommand(app, global);
  addGcCommand(app, global);
  addExplainCommand(app, global);
  addRecordCommand(app, global);
  try {
    std::vector<std::string> reversed(arguments.rbegin(), arguments.rend());  // CLI11's order
    app.parse(reversed);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const std::exception& error) {
    std::cerr << "cachectl: " << error.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace kcache::cachectl
