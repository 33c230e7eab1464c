#include "cmd/common/secret_arguments.h"

#include <array>
#include <cstring>
#include <string_view>

namespace kcache::cmd {
namespace {

constexpr std::array<std::string_view, 2> kSecretFlags = {"db_password", "db-password"};

// The flag name of an argument ("--db_password=x" -> "db_password"), "" when it is no flag.
std::string_view flagName(std::string_view argument) {
  if (argument.rfind("--", 0) == 0) {
    argument.remove_prefix(2);
  } else if (argument.rfind('-', 0) == 0) {
    argument.remove_prefix(1);
  } else {
    return {};
  }
  return argument.substr(0, argument.find('='));
}

bool isSecretFlag(std::string_view name) {
  for (const auto flag : kSecretFlags) {
    if (name == flag) return true;
  }
  return false;
}

void overwrite(char* value) {
  std::memset(value, 'x', std::strlen(value));
}

}  // namespace

std::size_t hideSecretArguments(int argc, char** argv) {
  std::size_t hidden = 0;
  for (int index = 1; index < argc; ++index) {
    const std::string_view argument(argv[index]);
    if (argument == "--") break;  // what follows is no flag
    if (!isSecretFlag(flagName(argument))) continue;
    if (const auto equals = argument.find('='); equals != std::string_view::npos) {
      overwrite(argv[index] + equals + 1);
      ++hidden;
    } else if (index + 1 < argc) {
      overwrite(argv[++index]);
      ++hidden;
    }
  }
  return hidden;
}

}  // namespace kcache::cmd
