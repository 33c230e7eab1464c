// cachectl: the operators' command line over kcache's core and store.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cmd/cachectl/input_files.h"
#include "cmd/cachectl/key_command.h"

int main(int argc, char** argv) {
  CLI::App app{"cachectl: inspect and maintain the kcache step cache"};
  app.require_subcommand(1);
  kcache::cachectl::addKeyCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const kcache::cachectl::UsageError& error) {
    std::cerr << "cachectl: " << error.what() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "cachectl: unexpected failure: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
