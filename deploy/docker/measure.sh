#!/usr/bin/env bash
# Run the serving image once and measure: image size, docker run -> /readyz 200, resident memory.
#
#   deploy/docker/measure.sh IMAGE [MODEL_FILE] [REQUESTS]
#
# MODEL_FILE (.pqz or .onnx) is mounted read-only at /models; without it the image's baked-in
# /models/model.pqz is served. The container runs as Kubernetes will run it: read-only root,
# tmpfs /tmp, all capabilities dropped, no new privileges. After /readyz, REQUESTS (default 200)
# batch-1 /v1/predict calls with a zero tensor from CLIENTS (default 4) concurrent curl loops,
# then memory again: docker stats (the cgroup's working set, what Kubernetes compares with the
# limit) and the server process's VmRSS / VmHWM (peak) from /proc. Prints one JSON line.
set -euo pipefail
IMAGE="$1"; MODEL="${2:-}"; REQUESTS="${3:-200}"; CLIENTS="${CLIENTS:-4}"
PORT="${PORT:-18080}" NAME="pqc-measure-$$"
ARGS=() MOUNT=()
if [ -n "$MODEL" ]; then
    MOUNT=(-v "$(cd "$(dirname "$MODEL")" && pwd):/models:ro")
    ARGS=("/models/$(basename "$MODEL")" --host 0.0.0.0 --port 8080)
fi
cleanup() { docker rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
t0=$(date +%s.%N)
docker run -d --name "$NAME" --read-only --tmpfs /tmp --cap-drop ALL \
    --security-opt no-new-privileges -p "127.0.0.1:${PORT}:8080" "${MOUNT[@]}" \
    "$IMAGE" "${ARGS[@]}" >/dev/null
ready=""
for _ in $(seq 1 3000); do  # at most 60 s
    if curl -sf -o /dev/null "http://127.0.0.1:${PORT}/readyz"; then ready=1; break; fi
    if [ "$(docker inspect --format '{{.State.Running}}' "$NAME")" != true ]; then break; fi
    sleep 0.02
done
t1=$(date +%s.%N)
if [ -z "$ready" ]; then docker logs "$NAME" >&2; echo "not ready" >&2; exit 1; fi
mem() { docker stats --no-stream --format '{{.MemUsage}}' "$NAME" | cut -d/ -f1 | tr -d ' '; }
mem_ready=$(mem)
shape=$(curl -sf "http://127.0.0.1:${PORT}/v1/model" | python3 -c \
    "import json,sys; m=json.load(sys.stdin); print(json.dumps(m.get('input_shape') or m['preprocessing']['input_shape']))")
body=$(python3 -c "import json,sys; import functools,operator
s=json.loads(sys.argv[1]); n=functools.reduce(operator.mul, s, 1)
def nest(flat, shape):
    if len(shape) == 1: return flat
    k = len(flat) // shape[0]; return [nest(flat[i*k:(i+1)*k], shape[1:]) for i in range(shape[0])]
print(json.dumps({'inputs': [nest([0.0]*n, s)]}))" "$shape")
pid=$(docker inspect --format '{{.State.Pid}}' "$NAME")
status() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
rss_ready=$(status VmRSS)
cpu() { curl -sf "http://127.0.0.1:${PORT}/metrics" | awk '/^process_cpu_seconds_total/ {print $NF}'; }
cpu_ready=$(cpu)
echo "$body" > "/tmp/pqc-measure-$$.json"
for _ in $(seq 1 "$CLIENTS"); do
    for _ in $(seq 1 $((REQUESTS / CLIENTS))); do
        curl -sf -o /dev/null -H 'Content-Type: application/json' \
            --data-binary "@/tmp/pqc-measure-$$.json" "http://127.0.0.1:${PORT}/v1/predict" || true
    done &
done
wait
rm -f "/tmp/pqc-measure-$$.json"
ok=$(curl -sf "http://127.0.0.1:${PORT}/metrics" | awk '/^pqc.*requests_total.*predict.*status="200"/ {s += $NF} END {print s + 0}')
mem_load=$(mem)
cpu_ms=$(echo "($(cpu) - $cpu_ready) * 1000 / $REQUESTS" | bc -l)
user=$(docker inspect --format '{{.Config.User}}' "$IMAGE")
printf '{"image": "%s", "model": "%s", "image_bytes": %s, "ready_s": %.3f, "docker_mem_ready": "%s", "rss_ready_mib": %s, "requests": %s, "clients": %s, "predict_200": %s, "docker_mem_after": "%s", "rss_after_load_mib": %s, "rss_peak_mib": %s, "rss_anon_mib": %s, "cpu_ms_per_request": %.2f, "user": "%s"}\n' \
    "$IMAGE" "${MODEL:-baked-in}" "$size" "$(echo "$t1 - $t0" | bc)" "$mem_ready" "$rss_ready" \
    "$REQUESTS" "$CLIENTS" "$ok" "$mem_load" "$(status VmRSS)" "$(status VmHWM)" "$(status RssAnon)" "$cpu_ms" "$user"
