#pragma once
// The real cache-server binary as a child process for end-to-end tests, and the files it needs:
// a webhook certificate, and a kubeconfig pointing at the fake Kubernetes API server.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/fakekube/fake_kube_server.h"
#include "tests/support/test_stamp_keys.h"
#include "webhook/admission_review.h"

extern char** environ;

namespace kcache::cmd_testing {

// Changes to the inherited environment: a value sets the variable, nullopt removes it.
using EnvironmentChanges = std::map<std::string, std::optional<std::string>>;

// A cache-server child process with stdout and stderr in `log`, killed on destruction if still
// running. It inherits this process's environment, with POD_NAME=`podName`,
// POD_NAMESPACE=kcache and `changes` applied.
class CacheServerProcess {
 public:
  CacheServerProcess(const std::vector<std::string>& arguments, const std::string& podName,
                     const std::filesystem::path& log, EnvironmentChanges changes = {}) {
    changes.emplace("POD_NAME", podName);
    changes.emplace("POD_NAMESPACE", "kcache");
    std::vector<std::string> environment;
    for (char** variable = environ; *variable != nullptr; ++variable) {
      const std::string entry = *variable;
      if (changes.count(entry.substr(0, entry.find('='))) == 0) environment.push_back(entry);
    }
    for (const auto& [name, value] : changes) {
      if (value) environment.push_back(name + "=" + *value);
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string logPath = log.string();
      FILE* out = std::freopen(logPath.c_str(), "w", stdout);
      if (out != nullptr) ::dup2(::fileno(stdout), STDERR_FILENO);
      std::vector<char*> argv{const_cast<char*>(KCACHE_CACHE_SERVER_BIN)};
      for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
      argv.push_back(nullptr);
      std::vector<char*> envp;
      for (const auto& variable : environment) envp.push_back(const_cast<char*>(variable.c_str()));
      envp.push_back(nullptr);
      ::execve(KCACHE_CACHE_SERVER_BIN, argv.data(), envp.data());
      ::_exit(127);
    }
  }
  ~CacheServerProcess() { stop(SIGKILL); }
  CacheServerProcess(const CacheServerProcess&) = delete;
  CacheServerProcess& operator=(const CacheServerProcess&) = delete;

  void stop(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

  // Waits up to `limit` for the process to end by itself; its exit code, or nullopt if it is
  // still running (or ended by a signal).
  std::optional<int> waitForExit(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (pid_ > 0) {
      int status = 0;
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return std::nullopt;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      ::usleep(20000);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
};

// cert.pem and key.pem for the webhook (self-signed for localhost) in `directory`.
inline void writeWebhookCertificate(const std::filesystem::path& directory) {
  const auto pair = fakekube::makeSelfSignedServerCa("localhost");
  std::ofstream(directory / "cert.pem") << pair.certificate;
  std::ofstream(directory / "key.pem") << pair.privateKey;
}

// A kubeconfig for the fake API server, trusting its CA.
inline void writeKubeconfig(const std::filesystem::path& file,
                            const fakekube::FakeKubeServer& fake) {
  std::ofstream(file) << "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
                      << "clusters:\n- name: fake\n  cluster:\n    server: " << fake.url()
                      << "\n    certificate-authority-data: "
                      << webhook::base64Encode(fake.serverCa().certificate) << "\n"
                      << "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
                      << "users:\n- name: fake\n  user:\n    token: unused\n";
}

// The tests' admission stamp secret in `file`, for --stamp-secret-file: the pods
// fakekube::makeTaggedPod stamps then verify, as if kcache's webhook had admitted them.
inline std::string writeTestStampSecret(const std::filesystem::path& file) {
  std::ofstream(file) << testing::testStampSecret() << "\n";
  return file.string();
}

// The log a child process wrote.
inline std::string readLog(const std::filesystem::path& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace kcache::cmd_testing
