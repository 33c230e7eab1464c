// Command lines as Go's flag package reads them: an empty value (`--flag=`, `-flag=`) is the empty
// string for every flag of cache-server and cachectl, never a reason to take the next argument;
// flags that cannot be empty refuse it, naming the flag as it was spelled. Every flag of both
// programs is tried, in each of its spellings, in the middle and at the end of the command line.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <functional>
#include <memory>
#include <set>

#include "cmd/cache-server/options.h"
#include "cmd/cachectl/app.h"
#include "cmd/common/go_style_flags.h"
#include "cmd/common/legacy_cache_mode.h"

namespace kcache::cmd {
namespace {

using Arguments = std::vector<std::string>;

// One program's command line, freshly registered: CLI11 keeps what a parse found.
class CommandLine {
 public:
  virtual ~CommandLine() = default;
  virtual CLI::App& app() = 0;
  // Parses without running a subcommand (cachectl's would open a database).
  void parse(const Arguments& arguments) {
    try {
      parseGoStyle(app(), arguments);
    } catch (const ParsedWithoutRunning&) {
    }
  }

 protected:
  // Thrown by the program's own parse-complete callback, which CLI11 runs after every flag has
  // its value and before any subcommand's callback.
  struct ParsedWithoutRunning {};
  void stopBeforeSubcommandsRun() {
    app().parse_complete_callback([] { throw ParsedWithoutRunning{}; });
  }
};

class CacheServerCommandLine : public CommandLine {
 public:
  CacheServerCommandLine() { cache_server::addOptions(app_, options); }
  CLI::App& app() override { return app_; }
  cache_server::Options options;

 private:
  CLI::App app_{"cache-server", "cache-server"};
};

class CachectlCommandLine : public CommandLine {
 public:
  CachectlCommandLine() {
    cachectl::addCachectlCommands(app_, global);
    stopBeforeSubcommandsRun();
  }
  CLI::App& app() override { return app_; }
  cachectl::GlobalOptions global;

 private:
  CLI::App app_{"cachectl", "cachectl"};
};

struct Program {
  std::string name;
  std::function<std::unique_ptr<CommandLine>()> make;
  // A subcommand to name when trying a global flag (cachectl requires one), else "".
  std::string anySubcommand;
  // The flags for which "" is a value (first long name); every other flag must refuse it.
  std::set<std::string> emptyAllowed;
};

const Program& cacheServer() {
  static const Program program{"cache-server",
                               [] { return std::make_unique<CacheServerCommandLine>(); },
                               "",
                               {"db-host", "db-name", "db-user", "db-password", "db-extra-params",
                                "namespace-to-watch", "kubeconfig",
                                // tenancy (issue 13): empty means "none" / "any creator"
                                "cluster-scope-writers", "trusted-creators"}};
  return program;
}

const Program& cachectl() {
  static const Program program{"cachectl",
                               [] { return std::make_unique<CachectlCommandLine>(); },
                               "stats",
                               {"db-host", "db-name", "db-user", "db-password", "db-extra-params",
                                "namespace", "key-prefix"}};
  return program;
}

// One flag of a program: where it lives and how it can be spelled with '='.
struct Flag {
  std::string subcommand;              // "" for the program's own flags
  std::string lookupName;              // for CLI::App::get_option ("--db-host", "-h")
  std::string firstName;               // first long name, else the short one
  std::vector<std::string> spellings;  // "--db_host", "-db_host", "-n", ...
};

void collectFlags(CLI::App& scope, const std::string& subcommand, std::vector<Flag>& flags) {
  for (CLI::Option* option : scope.get_options()) {
    if (!option->nonpositional()) continue;
    Flag flag;
    flag.subcommand = subcommand;
    for (const auto& name : option->get_lnames()) {
      flag.spellings.push_back("--" + name);
      flag.spellings.push_back("-" + name);  // Go's single dash
    }
    for (const auto& name : option->get_snames()) flag.spellings.push_back("-" + name);
    flag.firstName =
        option->get_lnames().empty() ? option->get_snames().front() : option->get_lnames().front();
    flag.lookupName = option->get_lnames().empty() ? "-" + flag.firstName : "--" + flag.firstName;
    flags.push_back(flag);
  }
}

std::vector<Flag> flagsOf(const Program& program) {
  auto commandLine = program.make();
  std::vector<Flag> flags;
  collectFlags(commandLine->app(), "", flags);
  for (CLI::App* subcommand : commandLine->app().get_subcommands({})) {
    collectFlags(*subcommand, subcommand->get_name(), flags);
  }
  return flags;
}

// What a command needs besides the flag under test: the subcommand, its positionals and its
// required flags (given values that are never empty).
Arguments prefixFor(CommandLine& commandLine, const Program& program, const Flag& flag) {
  Arguments arguments;
  const std::string subcommand = flag.subcommand.empty() ? program.anySubcommand : flag.subcommand;
  if (subcommand.empty()) return arguments;
  arguments.push_back(subcommand);
  for (CLI::Option* option : commandLine.app().get_subcommand(subcommand)->get_options()) {
    if (!option->get_required() || option->check_name(flag.lookupName)) continue;
    if (!option->nonpositional()) {
      arguments.push_back("1");
    } else {
      arguments.push_back("--" + option->get_lnames().front() + "=x");
    }
  }
  return arguments;
}

// The flag read after (or before) the one under test: a global text flag of both programs.
std::string followerFor(const Flag& flag) {
  return flag.firstName == "db-user" ? "--db_name" : "--db_user";
}

struct Outcome {
  bool parsed = false;
  std::string error;                 // what() of the parse error
  std::vector<std::string> results;  // the flag's results
  std::vector<std::string> followerResults;
};

Outcome parseWithEmpty(const Program& program, const Flag& flag, const std::string& spelling,
                       bool atTheEnd) {
  auto commandLine = program.make();
  Arguments arguments = prefixFor(*commandLine, program, flag);
  const std::string follower = followerFor(flag);
  if (atTheEnd) {
    arguments.push_back(follower + "=follows");
    arguments.push_back(spelling + "=");
  } else {
    arguments.push_back(spelling + "=");
    arguments.push_back(follower + "=follows");
  }
  Outcome outcome;
  try {
    commandLine->parse(arguments);
    outcome.parsed = true;
  } catch (const CLI::ParseError& error) {
    outcome.error = error.what();
    return outcome;
  }
  CLI::App& app = commandLine->app();
  CLI::App& scope = flag.subcommand.empty() ? app : *app.get_subcommand(flag.subcommand);
  outcome.results = scope.get_option(flag.lookupName)->results();
  outcome.followerResults = app.get_option(follower)->results();
  return outcome;
}

const Program& programNamed(const std::string& name) {
  return name == "cache-server" ? cacheServer() : cachectl();
}

class EveryFlag : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFlag, EmptyValueIsTheEmptyStringOrARefusalNamingTheFlag) {
  const Program& program = programNamed(GetParam());
  std::set<std::string> acceptedSeen;
  size_t cases = 0;
  for (const Flag& flag : flagsOf(program)) {
    const bool allowed = program.emptyAllowed.count(flag.firstName) > 0;
    if (allowed) acceptedSeen.insert(flag.firstName);
    for (const std::string& spelling : flag.spellings) {
      for (const bool atTheEnd : {false, true}) {
        ++cases;
        SCOPED_TRACE(program.name + " " + flag.subcommand + " " + spelling + "= " +
                     (atTheEnd ? "at the end" : "in the middle"));
        const Outcome outcome = parseWithEmpty(program, flag, spelling, atTheEnd);
        if (allowed) {
          ASSERT_TRUE(outcome.parsed) << outcome.error;
          EXPECT_EQ(outcome.results, std::vector<std::string>{""});
          EXPECT_EQ(outcome.followerResults, std::vector<std::string>{"follows"});
        } else {
          ASSERT_FALSE(outcome.parsed) << "accepted an empty value";
          const std::string expected = spelling + ": empty value; expected ";
          EXPECT_EQ(outcome.error.substr(0, expected.size()), expected) << outcome.error;
          EXPECT_GT(outcome.error.size(), expected.size()) << "says what it expects";
        }
      }
    }
  }
  EXPECT_EQ(acceptedSeen, program.emptyAllowed);
  // Both spellings of every flag, twice: a command line missing flags would show here.
  EXPECT_GE(cases, program.name == "cache-server" ? 4u * 30 : 4u * 20);
}

TEST_P(EveryFlag, OnlyTextFlagsTakeAnEmptyValue) {
  // A number, a port or a switch given "" would silently become 0 or false in CLI11.
  const Program& program = programNamed(GetParam());
  auto commandLine = program.make();
  for (const Flag& flag : flagsOf(program)) {
    if (program.emptyAllowed.count(flag.firstName) == 0) continue;
    CLI::App& app = commandLine->app();
    CLI::App& scope = flag.subcommand.empty() ? app : *app.get_subcommand(flag.subcommand);
    EXPECT_EQ(scope.get_option(flag.lookupName)->get_type_name().substr(0, 4), "TEXT")
        << flag.firstName;
  }
}

INSTANTIATE_TEST_SUITE_P(BothPrograms, EveryFlag, ::testing::Values("cache-server", "cachectl"),
                         [](const auto& info) {
                           return info.param == "cache-server" ? std::string("CacheServer")
                                                               : std::string("Cachectl");
                         });

cache_server::Options parseCacheServer(const Arguments& arguments) {
  CacheServerCommandLine commandLine;
  commandLine.parse(arguments);
  return commandLine.options;
}

TEST(GoStyleFlags, KubeflowMultiUserArgumentsKeepEveryFlag) {
  // The order of Kubeflow's Deployment; NAMESPACE_TO_WATCH and the password are empty.
  const auto options = parseCacheServer(
      {"--db_driver=pgx", "--db_host=postgres", "--db_port=5432", "--db_name=cachedb",
       "--db_user=root", "--db_password=", "--namespace_to_watch=", "--listen_port=8443"});
  EXPECT_EQ(options.namespaceToWatch, "");
  EXPECT_EQ(options.listenPort, 8443);
  EXPECT_EQ(options.database.flags.password, "");
  EXPECT_EQ(options.database.flags.user, "root");
  EXPECT_NO_THROW(cache_server::validate(options));

  // At the end, where CLI11 alone reported "1 required TEXT missing".
  const auto last = parseCacheServer({"--listen_port=9443", "--namespace_to_watch="});
  EXPECT_EQ(last.namespaceToWatch, "");
  EXPECT_EQ(last.listenPort, 9443);
}

TEST(GoStyleFlags, AnEmptyPasswordOnTheCommandLineWinsOverTheEnvironment) {
  ::setenv("DBCONFIG_PASSWORD", "from-environment", 1);
  const auto empty = parseCacheServer({"--db_password=", "--db_user=u"});
  const auto unset = parseCacheServer({"--db_user=u"});
  ::unsetenv("DBCONFIG_PASSWORD");
  EXPECT_EQ(empty.database.flags.password, "");
  EXPECT_EQ(unset.database.flags.password, "from-environment");
}

TEST(GoStyleFlags, AnEmptyEnvironmentVariableIsAnUnsetOne) {
  ::setenv("WEBHOOK_PORT", "", 1);
  ::setenv("NAMESPACE_TO_WATCH", "", 1);
  const auto options = parseCacheServer({});
  ::unsetenv("WEBHOOK_PORT");
  ::unsetenv("NAMESPACE_TO_WATCH");
  EXPECT_EQ(options.listenPort, 8443);
  EXPECT_EQ(options.namespaceToWatch, "");
}

TEST(GoStyleFlags, TheArgumentAfterAFlagWithoutEqualsIsItsValueWhateverItLooksLike) {
  const auto dashes = parseCacheServer({"-db_password", "-secret", "--db_user", "--odd"});
  EXPECT_EQ(dashes.database.flags.password, "-secret");
  EXPECT_EQ(dashes.database.flags.user, "--odd");
  const auto empty = parseCacheServer({"--namespace_to_watch", "", "--listen_port", "9000"});
  EXPECT_EQ(empty.namespaceToWatch, "");
  EXPECT_EQ(empty.listenPort, 9000);
  // Given apart, an empty port is refused by the same rule, under the documented name.
  try {
    parseCacheServer({"--listen_port", ""});
    ADD_FAILURE() << "an empty port was accepted";
  } catch (const CLI::ValidationError& error) {
    EXPECT_STREQ(error.what(), "--listen-port: empty value; expected a port 1-65535");
  }
}

TEST(GoStyleFlags, RewritesForCli11) {
  CachectlCommandLine commandLine;
  CLI::App& app = commandLine.app();
  EXPECT_EQ(goStyleArguments(app, {"-db_host=h", "list", "-n=team-a", "--namespace=", "--json"}),
            (Arguments{"--db-host=h", "list", "--namespace=team-a", "--namespace", "", "--json"}));
  // After "--" nothing is touched; unknown flags are left for CLI11 to report.
  EXPECT_EQ(goStyleArguments(app, {"stats", "-bogus=", "--", "--db_host="}),
            (Arguments{"stats", "--bogus=", "--", "--db_host="}));
  // "-" (standard input) and negative numbers are values, not flags.
  EXPECT_EQ(goStyleArguments(app, {"key", "--pod", "-", "--after-id", "-5"}),
            (Arguments{"key", "--pod", "-", "--after-id", "-5"}));
}

TEST(GoStyleFlags, SwitchesStillTakeExplicitValues) {
  CachectlCommandLine commandLine;
  commandLine.parse({"list", "--json=false", "-namespace=a"});
  CLI::App& list = *commandLine.app().get_subcommand("list");
  EXPECT_EQ(list.get_option("--json")->as<bool>(), false);
  EXPECT_EQ(list.get_option("--namespace")->as<std::string>(), "a");
}

TEST(LegacyCacheMode, UnsetAndEmptyAreEnforceOthersAreRefused) {
  EXPECT_EQ(parseLegacyCacheMode(std::nullopt), LegacyCacheMode::kEnforce);
  EXPECT_EQ(parseLegacyCacheMode(""), LegacyCacheMode::kEnforce);
  EXPECT_EQ(parseLegacyCacheMode("enforce"), LegacyCacheMode::kEnforce);
  EXPECT_EQ(parseLegacyCacheMode("audit"), LegacyCacheMode::kAudit);
  for (const char* invalid : {"Audit", "ENFORCE", " audit", "off", "true", "legacy"}) {
    try {
      parseLegacyCacheMode(invalid);
      ADD_FAILURE() << invalid << " was accepted";
    } catch (const std::invalid_argument& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("KFP_SECURITY_LEGACY_CACHE_MODE=\"" + std::string(invalid) + "\""),
                std::string::npos)
          << message;
      EXPECT_NE(message.find("expected enforce or audit"), std::string::npos) << message;
    }
  }
  EXPECT_EQ(toString(LegacyCacheMode::kAudit), "audit");
  EXPECT_EQ(toString(LegacyCacheMode::kEnforce), "enforce");
}

TEST(LegacyCacheMode, CacheServerReadsItFromTheEnvironmentOnly) {
  auto options = parseCacheServer({});
  ::setenv(kLegacyCacheModeVariable, "audit", 1);
  cache_server::readEnvironmentOnlySettings(options);
  EXPECT_EQ(options.legacyCacheMode, LegacyCacheMode::kAudit);
  ::setenv(kLegacyCacheModeVariable, "", 1);
  cache_server::readEnvironmentOnlySettings(options);
  EXPECT_EQ(options.legacyCacheMode, LegacyCacheMode::kEnforce);
  ::setenv(kLegacyCacheModeVariable, "permissive", 1);
  EXPECT_THROW(cache_server::readEnvironmentOnlySettings(options), std::invalid_argument);
  ::unsetenv(kLegacyCacheModeVariable);
  cache_server::readEnvironmentOnlySettings(options);
  EXPECT_EQ(options.legacyCacheMode, LegacyCacheMode::kEnforce);
}

}  // namespace
}  // namespace kcache::cmd
