#!/usr/bin/env bash
# The README's first command. Installs what is missing, builds, and runs kcache locally:
# a throwaway PostgreSQL, cache-server with a fresh self-signed certificate (no cluster needed),
# and one Kubeflow Pipelines step admitted twice: a miss, its completion recorded, then a hit.
# Everything it starts is stopped and removed on exit, also on Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/install-deps.sh
say "Building cache-server and cachectl (first build takes a few minutes; ccache makes later ones fast)"
bash scripts/build.sh release cache-server cachectl >/dev/null
server_bin="$root/build/cmd/cache-server/cache-server"
cachectl_bin="$root/build/cmd/cachectl/cachectl"

work="$(mktemp -d /tmp/kcache-demo.XXXXXX)"
server_pid=""
pg_started=""
run_as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  run_as_pg=(runuser -u postgres --)
  chown postgres "$work"
fi
pg_bin=/usr/lib/postgresql/15/bin

cleanup() {
  set +e
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; fi
  if [ -n "$pg_started" ]; then "${run_as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "Starting a throwaway PostgreSQL 15 in $work/pg (unix socket only)"
mkdir -p "$work/pg" "$work/socket"
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pg" "$work/socket"
"${run_as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --no-sync >"$work/initdb.log" 2>&1 ||
  { cat "$work/initdb.log"; exit 1; }
"${run_as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w -t 30 start \
  -o "-c listen_addresses='' -k $work/socket -c fsync=off" >/dev/null || { cat "$work/postgres.log"; exit 1; }
pg_started=1
psql -h "$work/socket" -U postgres -d postgres -qc "CREATE DATABASE cachedb" >/dev/null

say "Generating a self-signed certificate for the webhook (localhost, 127.0.0.1)"
mkdir -p "$work/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null

webhook_port="$(free_port)"
http_port="$(free_port)"
database=(--db-host "$work/socket" --db-port 5432 --db-user postgres --db-name cachedb)
say "Starting cache-server: webhook https://127.0.0.1:$webhook_port/mutate, metrics http://127.0.0.1:$http_port"
"$server_bin" "${database[@]}" --tls-dir "$work/tls" --listen-address 127.0.0.1 \
  --listen-port "$webhook_port" --http-port "$http_port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null || { echo "cache-server did not become ready"; cat "$work/server.log"; exit 1; }
sed 's/^/   server log: /' "$work/server.log"

# The AdmissionReview kube-apiserver sends when Argo creates a Kubeflow v1 step's pod.
review="$root/tests/data/admission/argo-3.5-v1.json"

admit() {
  curl -fsS --cacert "$work/tls/cert.pem" -H 'Content-Type: application/json' \
    --data-binary @"$1" "https://127.0.0.1:$webhook_port/mutate"
}

# Prints the answer's patch and checks it is the expected outcome (the demo doubles as the
# end-to-end test in scripts/test.sh, so a wrong answer fails it).
show_answer() {
  python3 - "$1" "$2" <<'PY'
import base64, json, sys
answer, expected = json.load(open(sys.argv[1]))["response"], sys.argv[2]
print(f"   allowed: {answer['allowed']}")
ops = json.loads(base64.b64decode(answer["patch"])) if "patch" in answer else []
for op in ops:
    value = json.dumps(op.get("value"), separators=(",", ":")) if "value" in op else ""
    if len(value) > 150:
        value = value[:147] + "..."
    print(f"   {op['op']:8} {op['path']} {value}")
paths = {op["path"]: op for op in ops}
is_hit = "/spec/containers" in paths and "/metadata/labels/pipelines.kubeflow.org~1reused_from_cache" in paths
is_miss = not is_hit and paths.get("/metadata/labels/pipelines.kubeflow.org~1cache_id", {}).get("value") == ""
if not answer["allowed"] or (expected == "hit" and not is_hit) or (expected == "miss" and not is_miss):
    sys.exit(f"demo: expected a {expected}, got the answer above")
PY
}

say "1. Admitting the step's pod for the first time: a MISS"
echo "   The webhook computes the execution key from ARGO_TEMPLATE and only tags the pod, so the"
echo "   watcher records it once it has run:"
admit "$review" >"$work/answer1.json"
show_answer "$work/answer1.json" miss

say "2. The step runs and succeeds; its outputs are recorded (what the watcher does in a cluster)"
python3 - "$review" "$work/answer1.json" "$work/completed-pod.json" <<'PY'
import base64, json, sys
pod = json.load(open(sys.argv[1]))["request"]["object"]
patch = json.loads(base64.b64decode(json.load(open(sys.argv[2]))["response"]["patch"]))
meta = pod["metadata"]
for op in patch:  # the miss patch only adds labels and annotations
    parts = op["path"].split("/")[2:]
    target = meta.setdefault(parts[0], {})
    if len(parts) == 1:
        target.update(op["value"])
    else:
        target[parts[1].replace("~1", "/").replace("~0", "~")] = op["value"]
meta["labels"]["workflows.argoproj.io/completed"] = "true"
meta["labels"]["pipelines.kubeflow.org/metadata_execution_id"] = "42"
meta["annotations"]["workflows.argoproj.io/outputs"] = json.dumps({
    "parameters": [{"name": "train-accuracy", "value": "0.93", "valueFrom": {"path": "/tmp/outputs/accuracy/data"}}],
    "artifacts": [{"name": "train-model", "s3": {"key": "artifacts/my-pipeline-x7k2p/train/model.tgz"}}],
    "exitCode": "0"}, separators=(",", ":"))
pod["status"] = {"phase": "Succeeded", "containerStatuses": [{"name": "main", "state": {"terminated": {
    "exitCode": 0, "startedAt": "2026-11-22T09:00:00Z", "finishedAt": "2026-11-22T09:41:07Z"}}}]}
json.dump(pod, open(sys.argv[3], "w"))
PY
"$cachectl_bin" "${database[@]}" record --pod "$work/completed-pod.json" | sed 's/^/   /'

say "3. The same step in a new run: a HIT"
echo "   The pod becomes one busybox echo container, and Argo gets the recorded outputs:"
sed 's/705ab4f5-6393-11e8-b7cc-42010a800002/705ab4f5-6393-11e8-b7cc-42010a800003/' "$review" >"$work/review2.json"
admit "$work/review2.json" >"$work/answer2.json"
show_answer "$work/answer2.json" hit

say "4. cachectl explain: why a step is (or is not) served from the cache"
"$cachectl_bin" "${database[@]}" explain --pod "$review" | tee "$work/explain.txt" | sed 's/^/   /'
grep -q "result: HIT" "$work/explain.txt" || { echo "demo: explain did not report the hit"; exit 1; }

sleep 1.2  # hit counters are written off the admission path, in batches (every second)
say "5. cachectl stats"
"$cachectl_bin" "${database[@]}" stats | tee "$work/stats.txt" | sed 's/^/   /'
grep -qE "^hits +1$" "$work/stats.txt" || { echo "demo: stats did not count the hit"; exit 1; }

say "6. Metrics (http://127.0.0.1:$http_port/metrics)"
curl -fs "http://127.0.0.1:$http_port/metrics" | grep -E '^kcache_(admission_requests_total|compute_seconds_saved)' | sed 's/^/   /' || true

say "Done. Stopping cache-server and PostgreSQL, removing $work"
