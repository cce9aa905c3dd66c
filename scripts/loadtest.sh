#!/usr/bin/env bash
# Load test: the quickstart app (examples/loadtest_server.rs serves it, release build, with
# the baselines beside it) under wrk. Every route is run once per round, rounds repeated, and
# the table gives the median over rounds of requests/s, p50/p99 latency and server CPU per
# request, and the median of the per-round ratios against the baselines of the same round.
#
# With two cores or more, the server (one tokio worker) and wrk (one thread) are pinned to
# cores of their own, so that they do not take turns on the same core.
#
#   scripts/loadtest.sh [seconds per route, default 5] [rounds, default 5] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
ROUNDS=${2:-5}
CONNECTIONS=${3:-32}
PORT=${PORT:-3100}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --example loadtest_server --quiet

server_pin=() wrk_pin=() server_threads=
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0) wrk_pin=(taskset -c 1) server_threads=1
fi
out=$(mktemp) results=$(mktemp)
PORT=$PORT TOKIO_WORKER_THREADS=${server_threads:-$(nproc)} "${server_pin[@]}" \
  target/release/examples/loadtest_server >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$out" "$results"' EXIT
for _ in $(seq 300); do grep -q READY "$out" && break; sleep 0.1; done
grep -q READY "$out" || { cat "$out" >&2; exit 1; }
KEY=$(sed -n 's/^KEY=//p' "$out")
TOKEN=$(sed -n 's/^TOKEN=//p' "$out")
base="http://127.0.0.1:$PORT"
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }

run() { # round name path [header]
  local round=$1 name=$2 path=$3 header=${4:-}
  local args=(-t1 -c"$CONNECTIONS" --latency)
  [ -n "$header" ] && args+=(-H "$header")
  "${wrk_pin[@]}" wrk "${args[@]}" -d1s "$base$path" >/dev/null 2>&1 || true # warm-up, discarded
  local before report after
  before=$(cpu_ticks)
  report=$("${wrk_pin[@]}" wrk "${args[@]}" -d"${DURATION}s" "$base$path")
  after=$(cpu_ticks)
  if echo "$report" | grep -q "Non-2xx"; then echo "$name: non-2xx answers!" >&2; echo "$report" >&2; exit 1; fi
  echo "$report" | awk -v r="$round" -v n="$name" -v t=$((after - before)) -v hz="$ticks" '
    function us(v) { if (v ~ /ms$/) return v * 1000; if (v ~ /us$/) return v + 0; return v * 1e6 }
    /requests in/ { req = $1 } /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    END { printf "%s %s %.0f %.0f %.0f %.1f\n", r, n, rps, p50, p99, t / hz / req * 1e6 }' >>"$results"
}

for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS..." >&2
  run "$round" none /health
  run "$round" empty /empty
  run "$round" sha-moka /sha-moka "x-api-key: $KEY"
  run "$round" key /orders "x-api-key: $KEY"
  run "$round" bare-jwt /bare-jwt "Authorization: Bearer $TOKEN"
  run "$round" jwt /orders "Authorization: Bearer $TOKEN"
  run "$round" jwt-cached /orders-cached "Authorization: Bearer $TOKEN"
done

echo
placement="server and wrk unpinned"
[ -n "$server_threads" ] && placement="server on core 0 (1 tokio worker), wrk on core 1 (1 thread)"
echo "wrk, $ROUNDS rounds of ${DURATION}s per route, $CONNECTIONS connections; $(nproc) cores, $placement"
echo
awk '
  function sorted(list, a,   n, i, j, v) { # insertion sort (mawk has no asort)
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j > 0 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
    return n
  }
  function median(list,   a, n) { n = sorted(list, a); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  function range(list,   a, n) { n = sorted(list, a); return sprintf("%.2f–%.2f", a[1], a[n]) }
  { rps[$2] = rps[$2] " " $3; p50[$2] = p50[$2] " " $4; p99[$2] = p99[$2] " " $5; cpu[$2] = cpu[$2] " " $6; r[$1, $2] = $3; rounds[$1] }
  function ratio(a, b, goal,   list, k) {
    list = ""; for (k in rounds) list = list " " r[k, a] / r[k, b]
    return sprintf("%.2f × %s (rounds %s)%s", median(list), b, range(list), goal)
  }
  function row(n, text) { printf "| %-10s | %8.0f | %7.0f µs | %7.0f µs | %6.1f | %s |\n", n, median(rps[n]), median(p50[n]), median(p99[n]), median(cpu[n]), text }
  END {
    print "| route      |    req/s |         p50 |         p99 | CPU µs/req | ratio (median of the per-round ratios) |"
    print "|---|---|---|---|---|---|"
    row("none", "baseline (`/health`)")
    row("empty", ratio("empty", "none", ""))
    row("sha-moka", ratio("sha-moka", "none", ""))
    row("key", ratio("key", "none", ", goal ≥ 0.85; ") ratio("key", "sha-moka", ""))
    row("bare-jwt", ratio("bare-jwt", "none", ""))
    row("jwt", ratio("jwt", "bare-jwt", ", goal ≥ 0.90"))
    row("jwt-cached", ratio("jwt-cached", "none", ", goal ≥ 0.70"))
  }' "$results"
