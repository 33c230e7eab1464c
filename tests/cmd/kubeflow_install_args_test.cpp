// The real cache-server started exactly as Kubeflow Pipelines' own cache-server Deployment starts
// it: the same eight arguments in the same order, `--name=$(VARIABLE)`, with the variables
// substituted as the kubelet does (empty values included), from the values each Kubeflow install
// gives them. Against a real PostgreSQL and the fake API server as its cluster, it must serve the
// webhook on WEBHOOK_PORT, watch NAMESPACE_TO_WATCH (every namespace when it is empty) and keep
// its cache in DBCONFIG_DB_NAME as DBCONFIG_USER.
//
// Kubeflow's installs, as of its manifests/kustomize:
//   - single user (base/cache/cache-deployment.yaml with installs/generic): the database settings
//     from pipeline-install-config and the mysql-secret (user root, empty password), and
//     NAMESPACE_TO_WATCH from the pod's namespace, kubeflow. Its driver is mysql: kcache refuses
//     it before connecting anywhere (kcache keeps its cache in PostgreSQL), and with the PostgreSQL
//     driver pgx the rest of that install's values work unchanged;
//   - multi user (installs/multi-user/cache/deployment-patch.yaml): the same, with
//     NAMESPACE_TO_WATCH set to '' (so `--namespace_to_watch=` comes before `--listen_port=...`);
//   - PostgreSQL (postgresql/cache/cache-deployment-patch.yaml, installs/generic/postgres): driver
//     pgx, database settings from that install's ConfigMap, user and password from
//     postgres-secret-extended (a real password, checked by the server);
//   - the multi-user patch over the PostgreSQL install, where kcache runs in a multi-user cluster.
// Each runs twice: with the container's variables also in the environment, as the kubelet sets
// them, and with the arguments alone (kcache reads some variables as fallbacks for its flags,
// which would hide a flag lost on the command line).
// Only what cannot be the same here differs: the database host and port (Kubeflow's service names
// do not resolve), and WEBHOOK_PORT (a free port instead of 8443, as tests run side by side).
// KCACHE_TLS_DIR, KCACHE_HTTP_PORT, KCACHE_LISTEN_ADDRESS and KUBECONFIG are environment, not
// arguments: the argument list stays Kubeflow's.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <tuple>

#include "tests/cmd/cache_server_process.h"
#include "tests/fakekube/fake_kube_server.h"
#include "tests/kube/kube_test_support.h"
#include "tests/support/postgres_server.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache {
namespace {

namespace fs = std::filesystem;
using kube::testing::waitFor;
using Environment = std::map<std::string, std::string>;

// The container's args in Kubeflow's cache-server Deployment, in its order.
const std::vector<std::string> kKubeflowArguments = {
    "--db_driver=$(DBCONFIG_DRIVER)",
    "--db_host=$(DBCONFIG_HOST_NAME)",
    "--db_port=$(DBCONFIG_PORT)",
    "--db_name=$(DBCONFIG_DB_NAME)",
    "--db_user=$(DBCONFIG_USER)",
    "--db_password=$(DBCONFIG_PASSWORD)",
    "--namespace_to_watch=$(NAMESPACE_TO_WATCH)",
    "--listen_port=$(WEBHOOK_PORT)",
};

// What the kubelet does to a container argument: $(NAME) of a variable defined in the container's
// environment becomes its value, the empty string included; anything else stays as written.
std::string substitute(const std::string& argument, const Environment& environment) {
  std::string result;
  for (size_t i = 0; i < argument.size();) {
    const size_t close = argument.find(')', i);
    if (argument.compare(i, 2, "$(") == 0 && close != std::string::npos) {
      const auto variable = environment.find(argument.substr(i + 2, close - i - 2));
      if (variable != environment.end()) {
        result += variable->second;
        i = close + 1;
        continue;
      }
    }
    result += argument[i++];
  }
  return result;
}

struct KubeflowInstall {
  std::string name;
  Environment environment;       // the container's variables, as the install sets them
  std::string watchedNamespace;  // "" for every namespace
};

void PrintTo(const KubeflowInstall& install, std::ostream* out) {
  *out << install.name;
}

// The variables every install's cache-server container gets besides the database ones, with the
// values of pipeline-install-config.
Environment commonEnvironment() {
  return {{"DEFAULT_CACHE_STALENESS", ""},
          {"MAXIMUM_CACHE_STALENESS", ""},
          {"CACHE_IMAGE", "ghcr.io/containerd/busybox"},
          {"CACHE_NODE_RESTRICTIONS", "false"},
          {"DBCONFIG_DB_NAME", "cachedb"},
          {"NAMESPACE_TO_WATCH", "kubeflow"}};  // fieldRef metadata.namespace
}

KubeflowInstall singleUser() {
  KubeflowInstall install{"single-user", commonEnvironment(), "kubeflow"};
  install.environment["DBCONFIG_DRIVER"] = "pgx";  // Kubeflow's value is mysql; see above
  install.environment["DBCONFIG_USER"] = "root";   // mysql-secret
  install.environment["DBCONFIG_PASSWORD"] = "";
  return install;
}

KubeflowInstall multiUser() {
  KubeflowInstall install = singleUser();
  install.name = "multi-user";
  install.environment["NAMESPACE_TO_WATCH"] = "";  // value: '' in the multi-user patch
  install.watchedNamespace = "";
  return install;
}

KubeflowInstall postgresql() {
  KubeflowInstall install{"postgresql", commonEnvironment(), "kubeflow"};
  install.environment["DBCONFIG_DRIVER"] = "pgx";
  install.environment["DBCONFIG_USER"] = "user";  // postgres-secret-extended
  install.environment["DBCONFIG_PASSWORD"] = "password";
  return install;
}

// The multi-user patch over the PostgreSQL install: with a password, nothing comes between
// `--namespace_to_watch=` and `--listen_port=...` (the case the watcher once read as namespace
// "--listen_port=8443").
KubeflowInstall multiUserPostgresql() {
  KubeflowInstall install = postgresql();
  install.name = "multi-user-postgresql";
  install.environment["NAMESPACE_TO_WATCH"] = "";
  install.watchedNamespace = "";
  return install;
}

// Kubeflow's roles in the shared test PostgreSQL: root without a password (local trust, as the
// test server's other users), and "user" whose password the server checks over TCP.
void createKubeflowRoles(test_support::PostgresServer& postgres) {
  static bool created = false;
  if (created) return;
  pqxx::connection admin(postgres.connectionString());
  pqxx::nontransaction work(admin);
  work.exec("CREATE ROLE root LOGIN");
  work.exec("CREATE ROLE \"user\" LOGIN PASSWORD 'password'");
  // pg_hba.conf takes the first line that matches: password checks for "user" come first.
  const fs::path hba = postgres.directory() / "data" / "pg_hba.conf";
  std::string rules;
  {
    std::ifstream in(hba);
    rules.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(hba) << "host all \"user\" 127.0.0.1/32 scram-sha-256\n" << rules;
  work.exec("SELECT pg_reload_conf()");
  created = true;
}

// cache-server started with Kubeflow's arguments, against the shared PostgreSQL and a fake API
// server.
class KubeflowArgumentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(test->test_suite_name()) + "-" + test->name();
    std::replace(name.begin(), name.end(), '/', '-');
    directory_ = fs::temp_directory_path() /
                 ("kcache-kubeflow-args-" + std::to_string(::getpid()) + "-" + name);
    fs::create_directories(directory_);
    cmd_testing::writeWebhookCertificate(directory_);
    cmd_testing::writeKubeconfig(directory_ / "kubeconfig", fake_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(directory_);
  }

  // An empty database cachedb (Kubeflow's name) owned by `owner`.
  static void createCacheDatabase(const std::string& owner) {
    auto& postgres = test_support::PostgresServer::shared();
    createKubeflowRoles(postgres);
    pqxx::connection admin(postgres.connectionString());
    pqxx::nontransaction work(admin);
    work.exec("DROP DATABASE IF EXISTS cachedb WITH (FORCE)");
    work.exec("CREATE DATABASE cachedb OWNER " + admin.quote_name(owner));
  }

  // Starts cache-server with Kubeflow's arguments, substituted from an install's environment plus
  // the database address and webhook port of this machine. The kubelet also sets the variables
  // themselves; kcache reads some of them as fallbacks for flags, which would hide a flag lost on
  // the command line, so `setVariables` false leaves them out (the arguments alone must do).
  // `extra` changes the process environment only (KFP_SECURITY_LEGACY_CACHE_MODE is removed
  // unless it sets it).
  void start(Environment environment, const cmd_testing::EnvironmentChanges& extra = {},
             bool setVariables = true) {
    auto& postgres = test_support::PostgresServer::shared();
    environment["DBCONFIG_HOST_NAME"] = "127.0.0.1";
    environment["DBCONFIG_PORT"] = std::to_string(postgres.port());
    webhookPort_ = test_support::findFreePort();
    environment["WEBHOOK_PORT"] = std::to_string(webhookPort_);
    httpPort_ = test_support::findFreePort();
    arguments_.clear();
    for (const auto& argument : kKubeflowArguments)
      arguments_.push_back(substitute(argument, environment));

    cmd_testing::EnvironmentChanges changes;
    for (const auto& [name, value] : environment) {
      changes[name] = setVariables ? std::optional<std::string>(value) : std::nullopt;
    }
    changes["KCACHE_TLS_DIR"] = directory_.string();
    changes["KCACHE_HTTP_PORT"] = std::to_string(httpPort_);
    changes["KCACHE_LISTEN_ADDRESS"] = "127.0.0.1";
    changes["KUBECONFIG"] = (directory_ / "kubeconfig").string();
    changes["KFP_SECURITY_LEGACY_CACHE_MODE"] = std::nullopt;
    for (const auto& [name, value] : extra) changes[name] = value;
    server_ = std::make_unique<cmd_testing::CacheServerProcess>(arguments_, "cache-server-0",
                                                                directory_ / "server.log", changes);
  }

  std::string log() const { return cmd_testing::readLog(directory_ / "server.log"); }

  bool answersHttp(const std::string& path) const {
    try {
      return webhook::testing::httpGet(httpPort_, path).status == 200;
    } catch (const std::exception&) {
      return false;
    }
  }
  bool ready() const { return answersHttp("/readyz"); }

  // Paths of the pod lists and watches the watcher sent.
  std::vector<std::string> podRequestPaths() const {
    std::vector<std::string> paths;
    for (const auto& request : fake_.requests()) {
      const bool pods = request.path.size() >= 5 &&
                        request.path.compare(request.path.size() - 5, 5, "/pods") == 0;
      if (request.method == "GET" && pods) paths.push_back(request.path);
    }
    return paths;
  }

  fakekube::FakeKubeServer fake_;
  fs::path directory_;
  std::vector<std::string> arguments_;
  uint16_t webhookPort_ = 0;
  uint16_t httpPort_ = 0;
  std::unique_ptr<cmd_testing::CacheServerProcess> server_;
};

// An install, and whether the container's variables are also in the environment.
class KubeflowInstallTest
    : public KubeflowArgumentsTest,
      public ::testing::WithParamInterface<std::tuple<KubeflowInstall, bool>> {};

TEST_P(KubeflowInstallTest, ServesWatchesAndConnectsAsTheInstallSays) {
  const auto& [install, setVariables] = GetParam();
  createCacheDatabase(install.environment.at("DBCONFIG_USER"));
  start(install.environment, {}, setVariables);
  ASSERT_EQ(arguments_.size(), 8u);
  if (install.watchedNamespace.empty()) {
    EXPECT_EQ(arguments_[6], "--namespace_to_watch=");  // an empty value, then another flag
    EXPECT_EQ(arguments_[7], "--listen_port=" + std::to_string(webhookPort_));
  }
  if (install.environment.at("DBCONFIG_PASSWORD").empty()) {
    EXPECT_EQ(arguments_[5], "--db_password=");
  }

  // Connected to the database named, as the user named: the store is ready and kcache's tables
  // are in cachedb, owned by that user.
  ASSERT_TRUE(waitFor([&] { return ready(); }, std::chrono::seconds(60))) << log();
  {
    pqxx::connection admin(test_support::PostgresServer::shared().connectionString("cachedb"));
    pqxx::nontransaction work(admin);
    const auto owners = work.exec(
        "SELECT tablename, tableowner FROM pg_tables WHERE tablename IN "
        "('kcache_schema_migrations', 'execution_caches') ORDER BY tablename");
    ASSERT_EQ(owners.size(), 2u) << log();
    for (const auto& row : owners) {
      EXPECT_EQ(row[1].as<std::string>(), install.environment.at("DBCONFIG_USER"))
          << row[0].as<std::string>();
    }
    EXPECT_GT(work.exec1("SELECT count(*) FROM kcache_schema_migrations")[0].as<int>(), 0);
  }

  // The webhook answers over TLS on WEBHOOK_PORT.
  webhook::testing::HttpsClient client(webhookPort_, {directory_ / "cert.pem"});
  const auto answer =
      client.postReview(webhook::testing::readFixture("skip-cache-not-enabled-v1.json"));
  EXPECT_EQ(answer.status, 200) << answer.body;
  EXPECT_NE(answer.body.find("\"allowed\":true"), std::string::npos) << answer.body;

  // The watcher lists and watches pods in NAMESPACE_TO_WATCH, or in every namespace when empty.
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& watch : fake_.watchRequests())
          if (watch.plural == "pods") return true;
        return false;
      },
      std::chrono::seconds(60)))
      << log();
  const std::string expectedPath = install.watchedNamespace.empty()
                                       ? "/api/v1/pods"
                                       : "/api/v1/namespaces/" + install.watchedNamespace + "/pods";
  const auto paths = podRequestPaths();
  ASSERT_FALSE(paths.empty());
  for (const auto& path : paths) EXPECT_EQ(path, expectedPath);
  for (const auto& watch : fake_.watchRequests()) {
    if (watch.plural == "pods") {
      EXPECT_EQ(watch.namespaceName, install.watchedNamespace);
    }
  }
  EXPECT_NE(log().find(install.watchedNamespace.empty() ? "watching all namespaces"
                                                        : "watching " + install.watchedNamespace),
            std::string::npos)
      << log();
}

INSTANTIATE_TEST_SUITE_P(Kubeflow, KubeflowInstallTest,
                         ::testing::Combine(::testing::Values(singleUser(), multiUser(),
                                                              postgresql(), multiUserPostgresql()),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param).name;
                           std::erase(name, '-');
                           return name + (std::get<1>(info.param) ? "_WithItsVariables"
                                                                  : "_ArgumentsAlone");
                         });

TEST(KubeflowInstallRoles, TheInstallPasswordIsChecked) {
  // Without it the PostgreSQL install's case would prove nothing about --db_password.
  auto& postgres = test_support::PostgresServer::shared();
  createKubeflowRoles(postgres);
  const std::string address =
      "host=127.0.0.1 port=" + std::to_string(postgres.port()) + " dbname=postgres user=user";
  EXPECT_THROW(pqxx::connection{address + " password=wrong"}, pqxx::broken_connection);
  EXPECT_NO_THROW(pqxx::connection{address + " password=password"});
}

// Kubeflow's single-user install as it is, driver mysql: refused at once, before any connection.
TEST_F(KubeflowArgumentsTest, TheMysqlDriverIsRefusedBeforeConnecting) {
  Environment environment = singleUser().environment;
  environment["DBCONFIG_DRIVER"] = "mysql";
  start(environment);
  EXPECT_EQ(server_->waitForExit(std::chrono::seconds(30)), 1) << log();
  EXPECT_NE(log().find("--db-driver=mysql is not supported: kcache keeps its cache in PostgreSQL"),
            std::string::npos)
      << log();
  EXPECT_EQ(log().find("cache store"), std::string::npos) << log();
}

// KFP_SECURITY_LEGACY_CACHE_MODE, with the database named absent: a valid mode gets as far as
// trying the database (and the webhook serves meanwhile); an invalid one stops before.
class LegacyCacheModeTest : public KubeflowArgumentsTest {
 protected:
  void startWithMode(const std::optional<std::string>& mode) {
    Environment environment = postgresql().environment;
    environment["DBCONFIG_DB_NAME"] = "no_such_database";
    createKubeflowRoles(test_support::PostgresServer::shared());
    start(environment, {{"KFP_SECURITY_LEGACY_CACHE_MODE", mode}});
  }
  // The server runs, serves, and is trying the missing database: it got past validation.
  void expectRunningAndTryingTheDatabase() {
    ASSERT_TRUE(waitFor([&] { return answersHttp("/healthz"); }, std::chrono::seconds(60)))
        << log();
    ASSERT_TRUE(waitFor([&] { return log().find("no_such_database") != std::string::npos; },
                        std::chrono::seconds(60)))
        << log();
    EXPECT_NE(log().find("cache store"), std::string::npos) << log();
    EXPECT_FALSE(ready());
  }
  size_t auditWarnings() const {
    const std::string text = log();
    size_t count = 0;
    for (size_t at = text.find("KFP_SECURITY_LEGACY_CACHE_MODE=audit"); at != std::string::npos;
         at = text.find("KFP_SECURITY_LEGACY_CACHE_MODE=audit", at + 1)) {
      ++count;
    }
    return count;
  }
};

// Unset, empty and "enforce" are all enforce: no warning.
class LegacyCacheModeEnforceTest
    : public LegacyCacheModeTest,
      public ::testing::WithParamInterface<std::optional<std::string>> {};

TEST_P(LegacyCacheModeEnforceTest, StartsWithoutAWarning) {
  startWithMode(GetParam());
  expectRunningAndTryingTheDatabase();
  EXPECT_EQ(auditWarnings(), 0u) << log();
}

INSTANTIATE_TEST_SUITE_P(Enforce, LegacyCacheModeEnforceTest,
                         ::testing::Values(std::nullopt, std::string(), std::string("enforce")),
                         [](const auto& info) {
                           return !info.param           ? std::string("Unset")
                                  : info.param->empty() ? std::string("Empty")
                                                        : std::string("Enforce");
                         });

TEST_F(LegacyCacheModeTest, AuditWarnsOnceAtStartup) {
  startWithMode("audit");
  expectRunningAndTryingTheDatabase();
  EXPECT_EQ(auditWarnings(), 1u) << log();
  EXPECT_NE(log().find("Kubeflow plans to remove audit mode in 3.0"), std::string::npos) << log();
}

TEST_F(LegacyCacheModeTest, AnyOtherValueStopsTheServerBeforeTheDatabase) {
  startWithMode("Audit");
  EXPECT_EQ(server_->waitForExit(std::chrono::seconds(30)), 1) << log();
  EXPECT_NE(log().find("KFP_SECURITY_LEGACY_CACHE_MODE=\"Audit\" is not a legacy cache mode: "
                       "expected enforce or audit"),
            std::string::npos)
      << log();
  EXPECT_EQ(log().find("no_such_database"), std::string::npos) << log();
  EXPECT_EQ(log().find("cache store"), std::string::npos) << log();
}

}  // namespace
}  // namespace kcache
