#!/usr/bin/env bash
# Load test: the routes of examples/loadtest_server.rs (release build) under wrk, one after
# the other in the same run, and a table of requests/s, p50/p99 latency, server CPU per
# request, and ratios against the baselines measured in that run.
#
#   scripts/loadtest.sh [seconds per route, default 10] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
PORT=${PORT:-3100}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --example loadtest_server --quiet
out=$(mktemp)
PORT=$PORT target/release/examples/loadtest_server >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q READY "$out" && break; sleep 0.1; done
KEY=$(sed -n 's/^KEY=//p' "$out")
TOKEN=$(sed -n 's/^TOKEN=//p' "$out")
base="http://127.0.0.1:$PORT"
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }

declare -A RPS P50 P99 CPU
run() { # name path [header]
  local name=$1 path=$2 header=${3:-}
  local args=(-t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency)
  [ -n "$header" ] && args+=(-H "$header")
  wrk "${args[@]}" "$base$path" >/dev/null 2>&1 || true # warm-up run, discarded
  local before; before=$(cpu_ticks)
  local report; report=$(wrk "${args[@]}" "$base$path")
  local after; after=$(cpu_ticks)
  local requests; requests=$(echo "$report" | awk '/requests in/ {print $1}')
  if echo "$report" | grep -q "Non-2xx"; then echo "$name: non-2xx answers!" >&2; echo "$report" >&2; exit 1; fi
  RPS[$name]=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
  P50[$name]=$(echo "$report" | awk '$1=="50%" {print $2}')
  P99[$name]=$(echo "$report" | awk '$1=="99%" {print $2}')
  CPU[$name]=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
}

run none /none
run empty /empty
run key /key "x-api-key: $KEY"
run bare-jwt /bare-jwt "Authorization: Bearer $TOKEN"
run jwt /jwt "Authorization: Bearer $TOKEN"
run jwt-cached /jwt-cached "Authorization: Bearer $TOKEN"

ratio() { awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "wrk, ${DURATION}s per route, $CONNECTIONS connections, 2 threads; server and wrk share $(nproc) cores"
echo
printf '| %-11s | %10s | %8s | %8s | %14s | %-30s |\n' route "req/s" p50 p99 "CPU µs/req" "ratio"
printf '|%s|%s|%s|%s|%s|%s|\n' -------------  ------------ ---------- ---------- ---------------- --------------------------------
row() { printf '| %-11s | %10s | %8s | %8s | %14s | %-30s |\n' "$1" "${RPS[$1]}" "${P50[$1]}" "${P99[$1]}" "${CPU[$1]}" "$2"; }
row none "1.00 (baseline)"
row empty "$(ratio empty none) x none"
row key "$(ratio key none) x none (goal ≥ 0.85)"
row bare-jwt "$(ratio bare-jwt none) x none"
row jwt "$(ratio jwt bare-jwt) x bare-jwt (goal ≥ 0.90)"
row jwt-cached "$(ratio jwt-cached none) x none (goal ≥ 0.70)"
