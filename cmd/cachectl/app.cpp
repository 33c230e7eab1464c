#include "cmd/cachectl/app.h"

#include <iostream>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"

namespace kcache::cachectl {

void addCachectlCommands(CLI::App& app, GlobalOptions& global) {
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand
  addGlobalOptions(app, global);
  addKeyCommand(app, global);
  addStatsCommand(app, global);
  addListCommand(app, global);
  addShowCommand(app, global);
  addPurgeCommand(app, global);
  addGcCommand(app, global);
  addExplainCommand(app, global);
  addRecordCommand(app, global);
}

int runCachectl(const std::vector<std::string>& arguments) {
  CLI::App app{
      "cachectl: inspect and maintain the kcache step cache.\n"
      "Database flags are cache-server's (also from DBCONFIG_* variables); they may come before "
      "or\n"
      "after the subcommand. Kubeflow's spellings (--db_host, -db_host) are accepted too. As in "
      "Go,\n"
      "an empty value (--db_password=) is the empty string; flags that cannot be empty refuse it.",
      "cachectl"};
  GlobalOptions global;
  addCachectlCommands(app, global);
  try {
    cmd::parseGoStyle(app, arguments);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const std::exception& error) {
    std::cerr << "cachectl: " << error.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace kcache::cachectl
