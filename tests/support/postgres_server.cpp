#include "tests/support/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace kcache::test_support {
namespace {

const std::filesystem::path kPostgresBin = "/usr/lib/postgresql/15/bin";

bool runningAsRoot() {
  return ::geteuid() == 0;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

struct CommandResult {
  int exitCode = -1;
  std::string output;
};

// Runs a PostgreSQL tool (as the postgres user when we are root) with stdout and stderr written
// to a file: a pipe could be inherited by the daemonised postmaster and never reach EOF.
CommandResult runTool(const std::filesystem::path& workDir, const std::string& tool,
                      const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (runningAsRoot()) argv = {"runuser", "-u", "postgres", "--"};
  // A bare name is a PostgreSQL tool; anything else (openssl) is found on PATH.
  argv.push_back(tool.find('/') == std::string::npos && tool != "openssl"
                     ? (kPostgresBin / tool).string()
                     : tool);
  argv.insert(argv.end(), args.begin(), args.end());

  static std::atomic<int> counter{0};
  const std::filesystem::path outputFile =
      workDir / ("tool-" + std::to_string(counter.fetch_add(1)) + ".out");
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
  if (child == 0) {
    const int fd = ::open(outputFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    const int devNull = ::open("/dev/null", O_RDONLY);
    if (devNull >= 0) ::dup2(devNull, STDIN_FILENO);
    if (::chdir(workDir.c_str()) != 0) _exit(126);
    std::vector<char*> cArgs;
    for (auto& arg : argv) cArgs.push_back(arg.data());
    cArgs.push_back(nullptr);
    ::execvp(cArgs[0], cArgs.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", cArgs[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  CommandResult result;
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.output = readFile(outputFile);
  std::error_code ignored;
  std::filesystem::remove(outputFile, ignored);
  return result;
}

void handOverToPostgresUser(const std::filesystem::path& path) {
  if (!runningAsRoot()) return;
  const passwd* user = ::getpwnam("postgres");
  if (user == nullptr) throw std::runtime_error("running as root but there is no postgres user");
  if (::chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
    throw std::runtime_error("cannot chown " + path.string() +
                             " to postgres: " + std::strerror(errno));
  }
}

bool hasRoomFor(const std::filesystem::path& directory, std::uintmax_t bytes) {
  std::error_code error;
  const auto space = std::filesystem::space(directory, error);
  return !error && std::filesystem::is_directory(directory) && space.available >= bytes;
}

// Where test servers live: $KCACHE_TEST_PG_DIR when set; else memory (/dev/shm) when it has
// room, since initdb and WAL on a busy disk dominate a test's run time; else /tmp. As root the
// directory must be reachable by the postgres user, so $TMPDIR (maybe under /root) is avoided.
std::filesystem::path baseDirectory() {
  if (const char* configured = std::getenv("KCACHE_TEST_PG_DIR"); configured && *configured) {
    return configured;
  }
  constexpr std::uintmax_t kEnoughMemory = 4ULL << 30;
  if (hasRoomFor("/dev/shm", kEnoughMemory)) return "/dev/shm";
  return runningAsRoot() ? std::filesystem::path("/tmp") : std::filesystem::temp_directory_path();
}

std::filesystem::path makeTemporaryDirectory() {
  const std::filesystem::path base = baseDirectory();
  std::string pattern = (base / "kcache-pg-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp in " + base.string() + " failed: " + std::strerror(errno));
  }
  return pattern;
}

// A test binary that crashed or was killed (a ctest timeout) leaves its server running, and in
// /dev/shm its data costs memory. Each server directory records the pid of the process that
// owns it; servers whose owner is gone are stopped and removed by the next one starting.
void reapAbandonedServers(const std::filesystem::path& base) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(base, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("kcache-pg-", 0) != 0) continue;
    std::ifstream ownerFile(entry.path() / "owner.pid");
    long owner = 0;
    if (!(ownerFile >> owner) || owner <= 0) continue;  // still being set up, or not ours
    if (::kill(static_cast<pid_t>(owner), 0) == 0 || errno != ESRCH) continue;  // owner alive
    if (std::filesystem::exists(entry.path() / "data" / "postmaster.pid")) {
      runTool(entry.path(), "pg_ctl",
              {"-D", (entry.path() / "data").string(), "-m", "immediate", "-w", "stop"});
    }
    std::error_code ignored;
    std::filesystem::remove_all(entry.path(), ignored);
  }
}

}  // namespace

int findFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed: " + std::string(std::strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot find a free port on 127.0.0.1: " + reason);
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

PostgresServer::PostgresServer(PostgresServerOptions options) {
  reapAbandonedServers(baseDirectory());
  root_ = makeTemporaryDirectory();
  std::ofstream(root_ / "owner.pid") << ::getpid() << "\n";
  dataDir_ = root_ / "data";
  logFile_ = root_ / "server.log";
  try {
    handOverToPostgresUser(root_);
    const CommandResult initdb = runTool(root_, "initdb",
                                         {"-D", dataDir_.string(), "-U", "postgres", "-A", "trust",
                                          "-E", "UTF8", "--no-locale", "--no-sync"});
    if (initdb.exitCode != 0) {
      throw std::runtime_error("initdb failed (exit " + std::to_string(initdb.exitCode) + "):\n" +
                               initdb.output);
    }
    port_ = findFreePort();
    {
      std::ofstream conf(dataDir_ / "postgresql.conf", std::ios::app);
      conf << "\n# kcache test server\n"
           << "listen_addresses = '127.0.0.1'\n"
           << "port = " << port_ << "\n"
           << "unix_socket_directories = '" << root_.string() << "'\n"
           << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
           << "max_connections = 200\n";
      if (!conf)
        throw std::runtime_error("cannot append to postgresql.conf in " + dataDir_.string());
    }
    if (options.tls) enableTls();
    start();
  } catch (...) {
    if (running_) stop();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
    throw;
  }
}

PostgresServer::~PostgresServer() {
  if (running_) {
    try {
      runTool(root_, "pg_ctl", {"-D", dataDir_.string(), "-m", "immediate", "-w", "stop"});
    } catch (...) {
      // Nothing sensible to do while tearing down; the directory goes away regardless.
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

PostgresServer& PostgresServer::shared() {
  // Constructed on first use; destroyed (server stopped, directory removed) at process exit.
  static PostgresServer server;
  return server;
}

std::string PostgresServer::connectionString(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + database;
}

std::string PostgresServer::socketConnectionString(const std::string& database) const {
  return "host=" + root_.string() + " port=" + std::to_string(port_) +
         " user=postgres dbname=" + database;
}

std::string PostgresServer::createDatabase(const std::string& name) {
  for (char c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!plain) throw std::invalid_argument("database name must be [a-z0-9_]: " + name);
  }
  pqxx::connection admin(connectionString("postgres"));
  pqxx::nontransaction txn(admin);
  txn.exec("CREATE DATABASE " + name);
  return connectionString(name);
}

std::string PostgresServer::createFreshDatabase(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return createDatabase(prefix + "_" + std::to_string(::getpid()) + "_" +
                        std::to_string(counter.fetch_add(1)));
}

void PostgresServer::stop() {
  if (!running_) return;
  const CommandResult result =
      runTool(root_, "pg_ctl", {"-D", dataDir_.string(), "-m", "fast", "-w", "-t", "60", "stop"});
  if (result.exitCode != 0) {
    throw std::runtime_error("pg_ctl stop failed (exit " + std::to_string(result.exitCode) +
                             "):\n" + result.output + "\nserver log:\n" + serverLog());
  }
  running_ = false;
}

void PostgresServer::start() {
  if (running_) return;
  const CommandResult result =
      runTool(root_, "pg_ctl",
              {"-D", dataDir_.string(), "-l", logFile_.string(), "-w", "-t", "60", "start"});
  if (result.exitCode != 0) {
    throw std::runtime_error("PostgreSQL did not start (pg_ctl exit " +
                             std::to_string(result.exitCode) + "):\n" + result.output +
                             "\nserver log:\n" + serverLog());
  }
  running_ = true;
}

void PostgresServer::enableTls() {
  // A throwaway self-signed certificate: clients use sslmode=require (no verification).
  const CommandResult openssl =
      runTool(root_, "openssl",
              {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-keyout", (dataDir_ / "server.key").string(), "-out",
               (dataDir_ / "server.crt").string(), "-subj", "/CN=localhost", "-days", "2"});
  if (openssl.exitCode != 0) {
    throw std::runtime_error("cannot create a TLS certificate (openssl exit " +
                             std::to_string(openssl.exitCode) + "):\n" + openssl.output);
  }
  std::filesystem::permissions(dataDir_ / "server.key", std::filesystem::perms::owner_read |
                                                            std::filesystem::perms::owner_write);
  std::ofstream conf(dataDir_ / "postgresql.conf", std::ios::app);
  conf << "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
}

std::string PostgresServer::serverLog() const {
  return readFile(logFile_);
}

}  // namespace kcache::test_support
