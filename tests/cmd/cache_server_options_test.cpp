// cache-server's flags: Kubeflow's spellings (with Go's single dash), kebab-case, environment,
// TLS file lookup in --tls-dir, and refusal of drivers other than PostgreSQL.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "cmd/cache-server/options.h"
#include "cmd/common/go_style_flags.h"
#include "webhook/config.h"

namespace kcache::cache_server {
namespace {

Options parse(const std::vector<std::string>& arguments) {
  CLI::App app;
  Options options;
  addOptions(app, options);
  cmd::parseGoStyle(app, arguments);
  return options;
}

TEST(CacheServerOptionsTest, KubeflowDeploymentArgumentsWorkUnchanged) {
  const auto options = parse({"--db_driver=pgx", "--db_host=postgres", "--db_port=5432",
                              "--db_name=cachedb", "--db_user=root", "--db_password=secret",
                              "--namespace_to_watch=kubeflow", "--listen_port=8443"});
  EXPECT_EQ(options.database.driver, "pgx");
  EXPECT_EQ(options.database.flags.host, "postgres");
  EXPECT_EQ(options.database.flags.user, "root");
  EXPECT_EQ(options.database.flags.password, "secret");
  EXPECT_EQ(options.namespaceToWatch, "kubeflow");
  EXPECT_EQ(options.listenPort, 8443);
  EXPECT_NO_THROW(validate(options));
}

TEST(CacheServerOptionsTest, GoSingleDashAndKebabCase) {
  const auto options = parse({"-db_host=db.example", "-db_port", "6543", "--cache-scope", "cluster",
                              "--cluster-scope-writers=kubeflow",
                              "--tls-cert-filename=/abs/cert.pem", "--http-port=9090"});
  EXPECT_EQ(options.database.flags.host, "db.example");
  EXPECT_EQ(options.database.flags.port, 6543);
  EXPECT_EQ(options.cacheScope, "cluster");
  EXPECT_EQ(options.httpPort, 9090);
  EXPECT_EQ(resolveTlsFile(options.tlsDir, options.tlsCertFilename), "/abs/cert.pem");
  EXPECT_EQ(resolveTlsFile(options.tlsDir, options.tlsKeyFilename), "/etc/webhook/certs/key.pem");
}

TEST(CacheServerOptionsTest, EnvironmentFillsFlags) {
  ::setenv("KCACHE_LOOKUP_TIMEOUT_MS", "250", 1);
  ::setenv("DBCONFIG_HOST_NAME", "from-env", 1);
  const auto options = parse({});
  ::unsetenv("KCACHE_LOOKUP_TIMEOUT_MS");
  ::unsetenv("DBCONFIG_HOST_NAME");
  EXPECT_EQ(options.lookupTimeoutMs, 250);
  EXPECT_EQ(options.database.flags.host, "from-env");
}

TEST(CacheServerOptionsTest, RefusesWhatCannotWork) {
  EXPECT_THROW(validate(parse({"--db_driver=mysql"})), std::invalid_argument);
  EXPECT_THROW(validate(parse({"--listen-port=8080"})), std::invalid_argument);
  EXPECT_THROW(parse({"--cache-scope=tenant"}), CLI::ValidationError);
}

// tenancy (issue 13)
TEST(TenancyOptions, ClusterScopeNeedsItsWritersListedAndSaysWhy) {
  try {
    validate(parse({"--cache-scope=cluster"}));
    FAIL() << "cluster scope started without --cluster-scope-writers";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("--cluster-scope-writers"), std::string::npos) << message;
    EXPECT_NE(message.find("every other"), std::string::npos) << message;
  }
  EXPECT_THROW(validate(parse({"--cache-scope=cluster", "--cluster-scope-writers= , "})),
               std::invalid_argument);
  EXPECT_NO_THROW(validate(parse({"--cache-scope=cluster", "--cluster-scope-writers=kubeflow"})));
  EXPECT_NO_THROW(validate(parse({"--cache-scope=cluster", "--cluster-scope-writers=*"})));
  ::setenv("KCACHE_CLUSTER_SCOPE_WRITERS", "team-a,team-b", 1);
  const auto fromEnvironment = parse({"--cache-scope=cluster"});
  ::unsetenv("KCACHE_CLUSTER_SCOPE_WRITERS");
  EXPECT_EQ(fromEnvironment.clusterScopeWriters, "team-a,team-b");
  EXPECT_NO_THROW(validate(fromEnvironment));
}

TEST(TenancyOptions, NamespaceScopeIgnoresTheWritersWithAWarning) {
  const auto options = parse({"--cluster-scope-writers=kubeflow"});
  EXPECT_NO_THROW(validate(options));
  ASSERT_EQ(ineffectiveSettings(options).size(), 1u);
  EXPECT_NE(ineffectiveSettings(options)[0].find("ignored"), std::string::npos);
  EXPECT_TRUE(ineffectiveSettings(parse({})).empty());
}

TEST(TenancyOptions, TrustedCreatorsDefaultToAnyAndComeFromTheEnvironment) {
  EXPECT_EQ(parse({}).trustedCreators, "");
  ::setenv("KCACHE_TRUSTED_CREATORS", "system:serviceaccount:kubeflow:argo", 1);
  const auto options = parse({});
  ::unsetenv("KCACHE_TRUSTED_CREATORS");
  EXPECT_EQ(options.trustedCreators, "system:serviceaccount:kubeflow:argo");
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
