// cache-server's Argo flags: --argo-outputs (env ARGO_OUTPUTS) and --argo-api-timeout-ms.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "cmd/cache-server/options.h"
#include "webhook/config.h"

namespace kcache::cache_server {
namespace {

Options parse(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), "cache-server");
  std::vector<const char*> argv;
  for (const auto& argument : arguments) argv.push_back(argument.c_str());
  CLI::App app;
  Options options;
  addOptions(app, options);
  app.parse(static_cast<int>(argv.size()), argv.data());
  return options;
}

TEST(ArgoOptions, DefaultsAreAutoAndOneSecond) {
  const auto options = parse({});
  EXPECT_EQ(options.argoOutputs, "auto");
  // A lookup (500 ms) and three API calls fit the registration's 5 s.
  EXPECT_EQ(options.argoApiTimeoutMs, 1000);
  EXPECT_EQ(webhook::parseArgoOutputsMode(options.argoOutputs), webhook::ArgoOutputsMode::kAuto);
}

TEST(ArgoOptions, FlagsAndEnvironment) {
  const auto flags = parse({"--argo-outputs=taskresult", "--argo-api-timeout-ms=750"});
  EXPECT_EQ(flags.argoOutputs, "taskresult");
  EXPECT_EQ(flags.argoApiTimeoutMs, 750);

  ::setenv("ARGO_OUTPUTS", "annotation", 1);
  ::setenv("KCACHE_ARGO_API_TIMEOUT_MS", "1500", 1);
  const auto environment = parse({});
  ::unsetenv("ARGO_OUTPUTS");
  ::unsetenv("KCACHE_ARGO_API_TIMEOUT_MS");
  EXPECT_EQ(environment.argoOutputs, "annotation");
  EXPECT_EQ(environment.argoApiTimeoutMs, 1500);
}

TEST(ArgoOptions, RefusesUnknownModesAndTimeoutsOutOfRange) {
  EXPECT_THROW(parse({"--argo-outputs=pod"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--argo-api-timeout-ms=0"}), CLI::ValidationError);
  auto options = parse({});
  EXPECT_NO_THROW(validate(options));
  options.argoOutputs = "TaskResult";
  EXPECT_THROW(validate(options), std::invalid_argument);
}

}  // namespace
}  // namespace kcache::cache_server
