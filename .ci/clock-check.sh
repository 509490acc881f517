#!/usr/bin/env bash
# Runs the tests that work with "today" under a faked clock (libfaketime),
# at moments where a day, a month and a year turn over in Asia/Shanghai and
# at the hour a clock-dependent test once failed: no test may depend on the
# wall clock's hour. Runs the already-built test binaries (cargo itself stays
# on the real clock), each from its crate's directory as cargo would.
set -euo pipefail
cd "$(dirname "$0")/.."

lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
if ! [ -e "$lib" ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends faketime
fi

# name of the test target -> its crate's directory
declare -A crates=(
  [cli]=crates/ai-usage-cli
  [ship]=crates/ai-usage-cli
  [it]=crates/ai-usage-core
  [api]=crates/ai-usage-server
)
exes=$(cargo test -p ai-usage-cli -p ai-usage-core -p ai-usage-server --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')

for moment in "2026-12-31 16:30:00" "2027-03-01 15:59:30" "2026-12-07 14:30:00"; do
  echo "== the clock at $moment UTC"
  while read -r name exe; do
    dir=${crates[$name]:-}
    [ -n "$dir" ] || continue
    echo "-- $name ($dir)"
    (cd "$dir" && LD_PRELOAD="$lib" FAKETIME="@$moment" DONT_FAKE_MONOTONIC=1 "$exe" --quiet)
  done <<< "$exes"
done
