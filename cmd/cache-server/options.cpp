#include "cmd/cache-server/options.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <stdexcept>

#include "cmd/common/go_style_flags.h"
#include "core/name_list.h"
#include "webhook/config.h"

namespace kcache::cache_server {

void addOptions(CLI::App& app, Options& options) {
  cmd::addDatabaseOptions(app, options.database);
  app.add_option("--db-pool-size", options.dbPoolSize, "Database connections kept open")
      ->check(cmd::nonEmpty("a number 1-256"))
      ->envname("KCACHE_DB_POOL_SIZE")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--namespace-to-watch,--namespace_to_watch", options.namespaceToWatch,
                 "Namespace whose pods the watcher records (empty: all namespaces)")
      ->envname("NAMESPACE_TO_WATCH");
  app.add_option("--listen-address", options.listenAddress,
                 "Address both ports listen on (0.0.0.0: all IPv4 interfaces, :: for IPv6)")
      ->check(cmd::nonEmpty("an IP address such as 0.0.0.0 or ::"))
      ->envname("KCACHE_LISTEN_ADDRESS")
      ->capture_default_str();
  app.add_option("--listen-port,--listen_port", options.listenPort,
                 "HTTPS port of the admission webhook (POST /mutate)")
      ->check(cmd::nonEmpty("a port 1-65535"))
      ->envname("WEBHOOK_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--http-port", options.httpPort,
                 "Plain HTTP port for /healthz, /readyz and /metrics (Prometheus)")
      ->check(cmd::nonEmpty("a port 1-65535"))
      ->envname("KCACHE_HTTP_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--tls-dir", options.tlsDir,
                 "Directory in which relative certificate and key file names are looked up")
      ->check(cmd::nonEmpty("a directory"))
      ->envname("KCACHE_TLS_DIR")
      ->capture_default_str();
  app.add_option("--tls-cert-filename,--tls_cert_filename", options.tlsCertFilename,
                 "PEM certificate chain of the webhook (relative to --tls-dir unless absolute); "
                 "reloaded when the file changes")
      ->check(cmd::nonEmpty("a file name"))
      ->envname("KCACHE_TLS_CERT_FILENAME")
      ->capture_default_str();
  app.add_option("--tls-key-filename,--tls_key_filename", options.tlsKeyFilename,
                 "PEM private key of the webhook (relative to --tls-dir unless absolute); "
                 "reloaded when the file changes")
      ->check(cmd::nonEmpty("a file name"))
      ->envname("KCACHE_TLS_KEY_FILENAME")
      ->capture_default_str();
  app.add_option("--tls-reload-interval-ms", options.tlsReloadIntervalMs,
                 "How often the certificate and key files are checked for changes")
      ->check(cmd::nonEmpty("a number of milliseconds 10-3600000"))
      ->envname("KCACHE_TLS_RELOAD_INTERVAL_MS")
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--cache-scope", options.cacheScope,
                 "namespace: an entry is reused only in the namespace that recorded it (tenant "
                 "isolation); cluster: shared by all namespaces, as Kubeflow Pipelines does")
      ->check(cmd::nonEmpty("namespace or cluster"))
      ->envname("KCACHE_CACHE_SCOPE")
      ->check(CLI::IsMember({"namespace", "cluster"}))
      ->capture_default_str();
  app.add_option("--lookup-timeout-ms", options.lookupTimeoutMs,
                 "Deadline of one store lookup; a slower or failing store lets the pod through "
                 "untouched")
      ->check(cmd::nonEmpty("a number of milliseconds 1-60000"))
      ->envname("KCACHE_LOOKUP_TIMEOUT_MS")
      ->check(CLI::Range(int64_t{1}, int64_t{60000}))
      ->capture_default_str();
  app.add_option("--io-threads", options.ioThreads, "Network threads (0: one per core)")
      ->check(cmd::nonEmpty("a number (0: one per core)"))
      ->envname("KCACHE_IO_THREADS")
      ->capture_default_str();
  app.add_option("--lookup-threads", options.lookupThreads,
                 "Threads running store lookups, apart from the network threads")
      ->check(cmd::nonEmpty("a number 1-256"))
      ->envname("KCACHE_LOOKUP_THREADS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--max-body-bytes", options.maxBodyBytes,
                 "Largest admission request body accepted (larger: 413, and kube-apiserver admits "
                 "the pod untouched); kube-apiserver itself takes request bodies up to 3 MiB")
      ->check(cmd::nonEmpty("a number of bytes"))
      ->envname("KCACHE_MAX_BODY_BYTES")
      ->check(CLI::Range(std::size_t{64 * 1024}, std::size_t{64 * 1024 * 1024}))
      ->capture_default_str();
  app.add_option("--max-connections", options.maxConnections,
                 "Open connections on the webhook port; at the cap a new connection closes the one "
                 "idle longest, or is refused when every connection is answering a request")
      ->envname("KCACHE_MAX_CONNECTIONS")
      ->check(cmd::nonEmpty("a number of connections"))
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}))
      ->capture_default_str();
  app.add_option("--client-ca-file", options.clientCaFile,
                 "PEM CA bundle: the webhook port then requires a client certificate signed by "
                 "it (kube-apiserver's, see README), failing the TLS handshake otherwise; "
                 "reloaded when the file changes. Not given: no client authentication")
      ->envname("KCACHE_CLIENT_CA_FILE")
      ->check(cmd::nonEmpty("a PEM CA bundle file"));
  // --- Admission stamps (issue 13) ---
  app.add_option("--stamp-secret-file", options.stampSecretFile,
                 "File holding the secret (at least 32 bytes; trailing newlines ignored) that "
                 "signs the admission stamp of every pod the webhook tags for recording; the "
                 "watcher records only pods whose stamp verifies. Every replica needs the same "
                 "one. Not given: a random secret kept in the database (table "
                 "kcache_admission_secret), shared by every server using it")
      ->envname("KCACHE_STAMP_SECRET_FILE")
      ->check(cmd::nonEmpty("a secret file"));
  app.add_option("--previous-stamp-secret-file", options.previousStampSecretFile,
                 "During a rotation of --stamp-secret-file: the secret it replaces, which still "
                 "verifies the stamps of pods admitted before (it signs nothing)")
      ->envname("KCACHE_PREVIOUS_STAMP_SECRET_FILE")
      ->check(cmd::nonEmpty("a secret file"));
  app.add_option("--watch", options.watch,
                 "Run the watcher (on the elected leader) that records completed steps; it starts "
                 "only when a cluster configuration is found (--kubeconfig, $KUBECONFIG, or "
                 "in-cluster)")
      ->check(cmd::nonEmpty("true or false"))
      ->envname("KCACHE_WATCH")
      ->capture_default_str();
  app.add_option("--watch-task-results", options.watchTaskResults,
                 "Also list and watch Argo's WorkflowTaskResults and record a step's outputs from "
                 "its task result (Argo >= 3.4 reports outputs there; old Argo keeps the pod "
                 "annotation, which is read either way)")
      ->check(cmd::nonEmpty("true or false"))
      ->envname("KCACHE_WATCH_TASK_RESULTS")
      ->capture_default_str();
  app.add_option("--task-result-wait-seconds", options.taskResultWaitSeconds,
                 "How long a succeeded pod waits for its task result (the two streams deliver in "
                 "any order) before it is recorded from the annotation, or without outputs (such "
                 "an entry is never replayed)")
      ->check(cmd::nonEmpty("a number of seconds 1-3600"))
      ->envname("KCACHE_TASK_RESULT_WAIT_SECONDS")
      ->check(CLI::Range(int64_t{1}, int64_t{3600}))
      ->capture_default_str();
  app.add_option("--kubeconfig", options.kubeconfig,
                 "Kubeconfig file for the watcher (default: $KUBECONFIG, else the in-cluster "
                 "service account)")
      ->envname("KCACHE_KUBECONFIG");
  app.add_option("--hit-cache-ttl-ms", options.hitCacheTtlMs,
                 "How long a hit found in the store is remembered in memory and reused without "
                 "asking the store again (0: never); a purge or GC reaches admissions at most "
                 "this much later. Misses are never remembered")
      ->check(cmd::nonEmpty("a number of milliseconds 0-60000"))
      ->envname("KCACHE_HIT_CACHE_TTL_MS")
      ->check(CLI::Range(int64_t{0}, int64_t{60000}))
      ->capture_default_str();
  app.add_option("--argo-outputs", options.argoOutputs,
                 "How a cache hit hands its outputs to Argo: annotation (the pod annotations, "
                 "Argo <= 3.5), taskresult (a WorkflowTaskResult created before the pod, every "
                 "Argo line), or auto (per pod: annotation when ARGO_TEMPLATE is on `main`, i.e. "
                 "Argo <= 3.5, else taskresult)")
      ->check(cmd::nonEmpty("auto, annotation or taskresult"))
      ->envname("ARGO_OUTPUTS")
      ->check(CLI::IsMember({"auto", "annotation", "taskresult"}))
      ->capture_default_str();
  app.add_option("--argo-api-timeout-ms", options.argoApiTimeoutMs,
                 "Deadline of each Kubernetes API call the webhook makes during admission "
                 "(creating a task result, reading an offloaded template); the webhook's own "
                 "client, apart from the watcher's")
      ->check(cmd::nonEmpty("a number of milliseconds 50-10000"))
      ->envname("KCACHE_ARGO_API_TIMEOUT_MS")
      ->check(CLI::Range(int64_t{50}, int64_t{10000}))
      ->capture_default_str();
  app.add_option("--gc-interval-seconds", options.gcIntervalSeconds,
                 "How often the leader deletes entries older than MAXIMUM_CACHE_STALENESS "
                 "(0: never)")
      ->check(cmd::nonEmpty("a number of seconds (0: never)"))
      ->envname("KCACHE_GC_INTERVAL_SECONDS")
      ->check(CLI::Range(int64_t{0}, int64_t{86400 * 30}))
      ->capture_default_str();
  app.add_option("--gc-max-entries", options.gcMaxEntries,
                 "After each GC keep at most this many entries, evicting the least recently hit "
                 "(0: no limit)")
      ->check(cmd::nonEmpty("a number (0: no limit)"))
      ->envname("KCACHE_GC_MAX_ENTRIES")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  // --- Least privilege, secrets, bounds (issue 13) ---
  app.add_option("--read-offloaded-templates", options.readOffloadedTemplates,
                 "Read the template Argo (>= 3.6) offloads to a ConfigMap named after the pod "
                 "when it is over 128 KiB, using it only when the pod's Workflow owns that "
                 "ConfigMap; needs the right to get ConfigMaps. Off: such steps are neither "
                 "cached nor recorded (counted as template_offloaded)")
      ->check(cmd::nonEmpty("true or false"))
      ->envname("KCACHE_READ_OFFLOADED_TEMPLATES")
      ->capture_default_str();
  app.add_option("--max-task-result-bytes", options.maxTaskResultBytes,
                 "Bytes of Argo task results (outputs) the watcher keeps in memory; beyond it "
                 "buffered ones are dropped first, then new outputs are not kept and their steps "
                 "are not recorded (kcache_watcher_taskresult_outputs_dropped_total)")
      ->check(cmd::nonEmpty("a number of bytes"))
      ->envname("KCACHE_MAX_TASK_RESULT_BYTES")
      ->check(CLI::Range(std::size_t{1} << 20, std::size_t{1} << 34))
      ->capture_default_str();
  // --- tenancy (issue 13) ---
  app.add_option("--cluster-scope-writers", options.clusterScopeWriters,
                 "With --cache-scope=cluster (required there): comma-separated namespaces whose "
                 "steps may be recorded into the cache all namespaces share, or * for every "
                 "namespace; pods of other namespaces still get hits but are never recorded. "
                 "Ignored in namespace scope")
      ->envname("KCACHE_CLUSTER_SCOPE_WRITERS");
  app.add_option("--trusted-creators", options.trustedCreators,
                 "Comma-separated user names (the admission request's userInfo.username) whose "
                 "pods may be tagged for recording, e.g. system:serviceaccount:kubeflow:argo; "
                 "pods created by anyone else can still get hits but are never recorded. Empty: "
                 "any creator")
      ->envname("KCACHE_TRUSTED_CREATORS");
  // --- end tenancy ---
  app.add_option("--log-format", options.logFormat, "Log line format: text or json")
      ->check(cmd::nonEmpty("text or json"))
      ->envname("KCACHE_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", options.logLevel,
                 "Log level: trace, debug, info, warn, error, critical or off")
      ->check(cmd::nonEmpty("trace, debug, info, warn, error, critical or off"))
      ->envname("KCACHE_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
}

std::filesystem::path resolveTlsFile(const std::filesystem::path& tlsDir,
                                     const std::string& fileName) {
  const std::filesystem::path file(fileName);
  return file.is_absolute() ? file : tlsDir / file;
}

void readEnvironmentOnlySettings(Options& options) {
  options.legacyCacheMode = cmd::legacyCacheModeFromEnvironment();
}

void validate(const Options& options) {
  cmd::validateDatabaseOptions(options.database);
  if (options.tlsCertFilename.empty() || options.tlsKeyFilename.empty()) {
    throw std::invalid_argument("--tls-cert-filename and --tls-key-filename must not be empty");
  }
  if (options.listenPort == options.httpPort) {
    throw std::invalid_argument("--listen-port and --http-port must differ");
  }
  if (options.stampSecretFile.empty() && !options.previousStampSecretFile.empty()) {
    throw std::invalid_argument(
        "--previous-stamp-secret-file needs --stamp-secret-file: the previous secret only "
        "verifies, the current one signs");
  }
  if (!webhook::parseArgoOutputsMode(options.argoOutputs)) {
    throw std::invalid_argument("--argo-outputs must be auto, annotation or taskresult, not \"" +
                                options.argoOutputs + "\"");
  }
  // tenancy (issue 13)
  if (options.cacheScope == "cluster" &&
      core::NameList::parse(options.clusterScopeWriters).empty()) {
    throw std::invalid_argument(
        "--cache-scope=cluster shares every entry with all namespaces, so a step recorded in any "
        "namespace would be replayed in every other: list the namespaces whose steps may be "
        "recorded into the shared cache with --cluster-scope-writers (KCACHE_CLUSTER_SCOPE_WRITERS"
        "), for example kubeflow, or * to let every namespace write, deliberately");
  }
}

std::vector<std::string> ineffectiveSettings(const Options& options) {
  std::vector<std::string> warnings;
  if (options.cacheScope != "cluster" &&
      !core::NameList::parse(options.clusterScopeWriters).empty()) {
    warnings.push_back(
        "--cluster-scope-writers is ignored in namespace scope, where an entry is "
        "only ever reused by the namespace that recorded it");
  }
  return warnings;
}

}  // namespace kcache::cache_server
