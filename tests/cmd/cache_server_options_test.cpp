// cache-server's flags: Kubeflow's spellings (with Go's single dash), kebab-case, environment,
// TLS file lookup in --tls-dir, and refusal of drivers other than PostgreSQL.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "cmd/cache-server/options.h"
#include "cmd/cache-server/stamp_keys.h"
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

// --- Admission stamps (issue 13) ---
class StampSecretOptions : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("kcache-stamp-options-" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }
  std::string file(const std::string& name, const std::string& content) {
    const auto path = directory_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }
  std::filesystem::path directory_;
};

TEST_F(StampSecretOptions, NoFileMeansTheDatabaseKeepsTheSecret) {
  const auto options = parse({});
  EXPECT_EQ(options.stampSecretFile, "");
  EXPECT_FALSE(stampKeysFromFiles(options.stampSecretFile, options.previousStampSecretFile));
}

TEST_F(StampSecretOptions, FlagsAndEnvironment) {
  const std::string current = file("current", std::string(40, 'c') + "\n");
  const std::string previous = file("previous", std::string(32, 'p'));
  auto options = parse({"--stamp-secret-file", current, "--previous-stamp-secret-file", previous});
  EXPECT_NO_THROW(validate(options));
  const auto keys = stampKeysFromFiles(options.stampSecretFile, options.previousStampSecretFile);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->rotating());
  // The trailing newline is not part of the secret: the same ring as the bare bytes.
  const std::string key(64, 'a');
  const core::StampSubject subject{"ns", "pod", false, key, -1};
  EXPECT_EQ(keys->sign(subject),
            core::StampKeyRing::fromSecrets(std::string(40, 'c')).value().sign(subject));
  ::setenv("KCACHE_STAMP_SECRET_FILE", current.c_str(), 1);
  options = parse({});
  ::unsetenv("KCACHE_STAMP_SECRET_FILE");
  EXPECT_EQ(options.stampSecretFile, current);
}

TEST_F(StampSecretOptions, RefusesWhatCannotWork) {
  // A previous secret alone: nothing would sign.
  EXPECT_THROW(validate(parse({"--previous-stamp-secret-file", file("p", std::string(32, 'p'))})),
               std::invalid_argument);
  // Too short, unreadable, or given empty.
  EXPECT_THROW(stampKeysFromFiles(file("short", std::string(31, 's') + "\n"), ""),
               std::invalid_argument);
  EXPECT_THROW(stampKeysFromFiles((directory_ / "absent").string(), ""), std::invalid_argument);
  EXPECT_THROW(stampKeysFromFiles(file("ok", std::string(32, 'o')), file("bad", "x")),
               std::invalid_argument);
  EXPECT_THROW(parse({"--stamp-secret-file="}), CLI::ValidationError);
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
