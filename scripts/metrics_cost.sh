#!/usr/bin/env bash
# What the feature `metrics` costs per request: benches/metrics.rs built without and with it,
# run in turns ($1 runs each, default 6), and the median of each side's
# `layer − no layer` (each already paired against its own run's baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-6}
bin() { cargo bench --bench metrics "$@" --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1; }
off=$(bin); on=$(bin --features metrics)
for _ in $(seq "$runs"); do "$off"; "$on"; done | grep 'layer − no layer' |
  sed -E 's/^metrics\/(.*), metrics (on|off), .* = ([0-9.]+) ns.*/\1|\2|\3/' |
  sort -t'|' -k1,2 -k3n |
  awk -F'|' '{k=$1" (metrics "$2")"; v[k]=v[k]" "$3; n[k]++}
    END {for (k in v) {split(substr(v[k],2), a, " "); m=n[k];
      med=(m%2)?a[(m+1)/2]:(a[m/2]+a[m/2+1])/2; printf "%s: layer − no layer, median of %d runs = %s ns (runs:%s)\n", k, m, med, v[k]}}' |
  sort
