#pragma once
// The real cache-server binary as a child process for end-to-end tests, and the files it needs:
// a webhook certificate, and a kubeconfig pointing at the fake Kubernetes API server.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/fakekube/fake_kube_server.h"
#include "webhook/admission_review.h"

extern char** environ;

namespace kcache::cmd_testing {

// A cache-server child process with stdout and stderr in `log`, killed on destruction if still
// running.
class CacheServerProcess {
 public:
  CacheServerProcess(const std::vector<std::string>& arguments, const std::string& podName,
                     const std::filesystem::path& log) {
    std::vector<std::string> environment;
    for (char** variable = environ; *variable != nullptr; ++variable)
      environment.emplace_back(*variable);
    environment.push_back("POD_NAME=" + podName);
    environment.push_back("POD_NAMESPACE=kcache");
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
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

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

// The log a child process wrote.
inline std::string readLog(const std::filesystem::path& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace kcache::cmd_testing
