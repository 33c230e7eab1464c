#include "store/dsn.h"

#include <libpq-fe.h>

#include <cctype>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kcache::store {
namespace {

std::string quoteValue(std::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '\'';
  return quoted;
}

bool isParameterName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::islower(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::map<std::string, std::string> parseExtraParams(const std::string& text) {
  std::map<std::string, std::string> params;
  std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return params;
  if (text[first] == '{') {
    const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object()) throw std::invalid_argument("--db_extra_params: invalid JSON object");
    for (const auto& [name, value] : json.items()) {
      if (value.is_string()) {
        params[name] = value.get<std::string>();
      } else if (value.is_number() || value.is_boolean()) {
        params[name] = value.dump();
      } else {
        throw std::invalid_argument("--db_extra_params: value of " + name + " must be a scalar");
      }
    }
  } else {
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t end = text.find_first_of("&,; \t\r\n", pos);
      const std::string item = text.substr(pos, end == std::string::npos ? end : end - pos);
      pos = end == std::string::npos ? text.size() : end + 1;
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      if (eq == std::string::npos) {
        throw std::invalid_argument("--db_extra_params: expected key=value, got a bare word");
      }
      params[item.substr(0, eq)] = item.substr(eq + 1);
    }
  }
  for (const auto& [name, value] : params) {
    if (!isParameterName(name)) {
      throw std::invalid_argument("--db_extra_params: invalid parameter name '" + name + "'");
    }
    if (name == "password") {
      throw std::invalid_argument(
          "--db_extra_params must not carry the password (use --db_password)");
    }
  }
  return params;
}

struct ConninfoDeleter {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
using ConninfoPtr = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

ConninfoPtr parseConninfo(std::string_view dsn) {
  char* error = nullptr;
  ConninfoPtr options(PQconninfoParse(std::string(dsn).c_str(), &error));
  // The parser's message may quote parts of the string, password included: never pass it on.
  if (error != nullptr) PQfreemem(error);
  return options;
}

}  // namespace

std::string buildDsn(const DatabaseFlags& flags) {
  std::string dsn = "host=" + quoteValue(flags.host) + " port=" + std::to_string(flags.port) +
                    " dbname=" + quoteValue(flags.dbName) + " user=" + quoteValue(flags.user);
  if (!flags.password.empty()) dsn += " password=" + quoteValue(flags.password);
  bool hasConnectTimeout = false;
  for (const auto& [name, value] : parseExtraParams(flags.extraParams)) {
    dsn += " " + name + "=" + quoteValue(value);
    hasConnectTimeout = hasConnectTimeout || name == "connect_timeout";
  }
  // Without it a connection attempt to an unreachable host waits for the TCP stack (minutes).
  if (!hasConnectTimeout) dsn += " connect_timeout=2";
  return dsn;
}

std::string describeDsn(std::string_view dsn) {
  const ConninfoPtr options = parseConninfo(dsn);
  if (!options) return "<unparsable connection string>";
  std::map<std::string, std::string> values;
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val != nullptr) values[option->keyword] = option->val;
  }
  const std::string host = !values["host"].empty()       ? values["host"]
                           : !values["hostaddr"].empty() ? values["hostaddr"]
                                                         : "localhost";
  std::string description = (values["user"].empty() ? "" : values["user"] + "@") + host + ":" +
                            (values["port"].empty() ? "5432" : values["port"]) + "/" +
                            values["dbname"];
  if (!values["sslmode"].empty()) description += " (sslmode=" + values["sslmode"] + ")";
  return description;
}

std::string withConnectTimeout(const std::string& dsn, int seconds) {
  const ConninfoPtr options = parseConninfo(dsn);
  if (options) {
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
      if (std::string_view(option->keyword) == "connect_timeout" && option->val != nullptr &&
          *option->val != '\0') {
        return dsn;
      }
    }
  }
  const std::string setting = "connect_timeout=" + std::to_string(seconds);
  const bool uri = dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0;
  if (!uri) return dsn.empty() ? setting : dsn + " " + setting;
  return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + setting;
}

std::optional<std::string> unverifiedServerWarning(std::string_view dsn,
                                                   const char* environmentSslMode) {
  const ConninfoPtr options = parseConninfo(dsn);
  if (!options) return std::nullopt;  // opening the store reports the malformed string
  std::map<std::string, std::string> values;
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val != nullptr) values[option->keyword] = option->val;
  }
  const std::string host = !values["host"].empty() ? values["host"] : values["hostaddr"];
  // libpq's own default host is a Unix socket; "/..." is one too.
  const bool local = host.empty() || host.front() == '/' || host == "localhost" ||
                     host.rfind("127.", 0) == 0 || host == "::1";
  if (local) return std::nullopt;
  std::string sslmode = values["sslmode"];
  if (sslmode.empty() && environmentSslMode != nullptr) sslmode = environmentSslMode;
  if (sslmode.empty()) sslmode = "prefer";  // libpq's default
  if (sslmode == "verify-ca" || sslmode == "verify-full") return std::nullopt;
  return "the database at " + host + " is reached with sslmode=" + sslmode +
         ", which does not verify the server's certificate: anyone able to intercept that "
         "traffic can read the database password and the cached outputs, or answer in the "
         "database's place. Set sslmode=verify-full and sslrootcert=<CA file> in "
         "--db-extra-params (the chart's database.external.tls values do it)";
}

std::string passwordOf(std::string_view dsn) {
  const ConninfoPtr options = parseConninfo(dsn);
  if (!options) return "";
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (std::string_view(option->keyword) == "password" && option->val != nullptr) {
      return option->val;
    }
  }
  return "";
}

std::string redact(std::string message, std::string_view secret) {
  if (secret.empty()) return message;
  for (std::size_t pos = message.find(secret); pos != std::string::npos;
       pos = message.find(secret, pos + 3)) {
    message.replace(pos, secret.size(), "***");
  }
  return message;
}

std::string oneLineError(const std::string& message, std::string_view secret) {
  std::string line;
  bool pendingSpace = false;
  for (char c : redact(message, secret)) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      pendingSpace = !line.empty();
      continue;
    }
    if (pendingSpace) line += ' ';
    pendingSpace = false;
    line += c;
  }
  return line;
}

}  // namespace kcache::store
