#!/usr/bin/env bash
# HTTP latency of the read routes over a records directory, as a client
# sees it: starts `ai-usage serve` on DIR, waits until its history is
# loaded, then asks each route ROUNDS times (one curl request each, a new
# loopback connection every time) and prints the p50 and p90 in ms.
#
#   cargo build --release -p ai-usage-cli
#   cargo run --release --example scale -- --records 10000000 --keep /tmp/scale10m
#   crates/ai-usage-server/bench/http_latency.sh /tmp/scale10m [ROUNDS]
set -euo pipefail
dir=${1:?usage: http_latency.sh DIR [ROUNDS]}
rounds=${2:-200}
bin=${AI_USAGE_BIN:-target/release/ai-usage}
port=$((20000 + RANDOM % 20000))
"$bin" --dir "$dir" serve --addr "127.0.0.1:$port" >/tmp/http_latency.$port.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
start=$(date +%s.%N)
until curl -sf "http://127.0.0.1:$port/healthz" 2>/dev/null | grep -q '"loading":false'; do
  kill -0 $pid 2>/dev/null || { cat /tmp/http_latency.$port.log; exit 1; }
  sleep 0.05
done
echo "ready after $(echo "$(date +%s.%N) - $start" | bc) s (rss $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)); load: $(curl -s "http://127.0.0.1:$port/healthz" | grep -o '"source":"[a-z ]*"\|"snapshot_unused":[^,]*' | tr '\n' ' ')"
# (Not the dashboard route: it answers from a cache kept between records.)
for path in /api/ai_usage/stats/daily "/api/ai_usage/top_users?days=30"; do
  for _ in $(seq "$rounds"); do
    # -f: a route that answers an error fails the run instead of timing it.
    curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$path"
  done | sort -n | awk -v p="$path" '{t[NR]=$1} END {printf "%-40s p50 %.2f ms  p90 %.2f ms  (%d requests)\n", p, t[int(NR*0.5)+1]*1000, t[int(NR*0.9)+1]*1000, NR}'
done
echo "rss after the requests: $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)"
