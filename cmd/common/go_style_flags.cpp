#include "cmd/common/go_style_flags.h"

#include <algorithm>
#include <cctype>
#include <optional>

namespace kcache::cmd {
namespace {

// The name under which a nonEmpty check is found again on its option.
constexpr const char* kEmptyValueRule = "kcache-empty-value";

// One argument read as a flag, as Go's flag package reads it.
struct FlagArgument {
  std::string spelling;              // as given, up to '=': "-listen_port", "--db-host", "-n"
  std::string name;                  // without the dashes
  bool longName = true;              // false for one dash and one letter (-n), CLI11's short names
  std::optional<std::string> value;  // what follows '=', when there is one ("" for `--name=`)
};

// nullopt for anything that is not a flag: a value or positional ("x", "-", "-5"), or "--".
std::optional<FlagArgument> asFlag(const std::string& argument) {
  if (argument.size() < 2 || argument[0] != '-') return std::nullopt;
  const size_t nameStart = argument[1] == '-' ? 2 : 1;
  const size_t equals = argument.find('=');
  const size_t nameEnd = std::min(equals, argument.size());
  if (nameEnd <= nameStart || !std::isalpha(static_cast<unsigned char>(argument[nameStart]))) {
    return std::nullopt;
  }
  FlagArgument flag;
  flag.spelling = argument.substr(0, nameEnd);
  flag.name = argument.substr(nameStart, nameEnd - nameStart);
  flag.longName = nameStart == 2 || flag.name.size() > 1;
  if (equals != std::string::npos) flag.value = argument.substr(equals + 1);
  return flag;
}

// The option `flag` names in `context` or, as CLI11 falls through to them, its parents.
CLI::Option* findOption(CLI::App& context, const FlagArgument& flag) {
  for (CLI::App* app = &context; app != nullptr; app = app->get_parent()) {
    for (CLI::Option* option : app->get_options()) {
      if (flag.longName ? option->check_lname(flag.name) : option->check_sname(flag.name)) {
        return option;
      }
    }
  }
  return nullptr;
}

CLI::App* subcommandNamed(CLI::App& context, const std::string& name) {
  for (CLI::App* subcommand : context.get_subcommands({})) {
    if (subcommand->check_name(name)) return subcommand;
  }
  return nullptr;
}

// A switch (--json, --yes) takes no value; CLI11 still reads --json=false.
bool isSwitch(const CLI::Option& option) {
  return option.get_items_expected_max() == 0;
}

// How many following arguments CLI11 takes as values, whatever they look like.
int valuesTaken(const CLI::Option& option) {
  return std::min(option.get_type_size_min(), option.get_items_expected_min());
}

// The spelling CLI11 finds the option under: its first long name when it has one.
std::string canonicalSpelling(const CLI::Option& option, const FlagArgument& flag) {
  if (!option.get_lnames().empty()) return "--" + option.get_lnames().front();
  return flag.longName ? "--" + flag.name : "-" + flag.name;
}

// Throws when `option` refuses the empty value `flag` gives it.
void checkEmptyValue(CLI::Option& option, const FlagArgument& flag) {
  if (isSwitch(option)) {
    throw CLI::ValidationError(flag.spelling, "empty value; expected true or false");
  }
  const CLI::Validator* rule = nullptr;
  try {
    rule = option.get_validator(kEmptyValueRule);
  } catch (const CLI::OptionNotFound&) {
    return;  // "" is a value like any other for this flag
  }
  const std::string problem = (*rule)(std::string());
  if (!problem.empty()) throw CLI::ValidationError(flag.spelling, problem);
}

}  // namespace

CLI::Validator nonEmpty(const std::string& expected) {
  const std::string problem = "empty value; expected " + expected;
  // No description, so the help text's type column stays as it was.
  return CLI::Validator(
      [problem](std::string& value) { return value.empty() ? problem : std::string(); }, "",
      kEmptyValueRule);
}

std::vector<std::string> goStyleArguments(CLI::App& app,
                                          const std::vector<std::string>& arguments) {
  std::vector<std::string> result;
  result.reserve(arguments.size() + 2);
  CLI::App* context = &app;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") {
      result.insert(result.end(), arguments.begin() + static_cast<std::ptrdiff_t>(i),
                    arguments.end());
      break;
    }
    const auto flag = asFlag(argument);
    if (!flag) {
      if (CLI::App* subcommand = subcommandNamed(*context, argument)) context = subcommand;
      result.push_back(argument);
      continue;
    }
    CLI::Option* option = findOption(*context, *flag);
    if (option == nullptr) {
      // Unknown: left for CLI11 to report, with Go's single dash made CLI11's double one.
      result.push_back(flag->longName ? "--" + argument.substr(argument[1] == '-' ? 2 : 1)
                                      : argument);
      continue;
    }
    const std::string spelling = canonicalSpelling(*option, *flag);
    if (!flag->value) {
      result.push_back(spelling);
      for (int n = valuesTaken(*option); n > 0 && i + 1 < arguments.size(); --n) {
        result.push_back(arguments[++i]);  // a value, even "-secret" or ""
      }
    } else if (flag->value->empty()) {
      checkEmptyValue(*option, *flag);
      result.push_back(spelling);
      result.push_back("");
    } else {
      result.push_back(spelling + "=" + *flag->value);
    }
  }
  return result;
}

void parseGoStyle(CLI::App& app, const std::vector<std::string>& arguments) {
  auto rewritten = goStyleArguments(app, arguments);
  std::reverse(rewritten.begin(), rewritten.end());  // CLI11 takes a vector last argument first
  app.parse(rewritten);
}

}  // namespace kcache::cmd
