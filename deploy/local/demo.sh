#!/usr/bin/env bash
# make demo: a local cluster, a short workload, the live event stream, then a
# node joining (its migration streams arcs to it) and leaving again (it hands
# everything back and placement removes it).
set -euo pipefail
bin=$1
run=${RUN:-.run}
keys=${DEMO_KEYS:-20000}
# --insecure for a cluster made with INSECURE=1; else ringctl finds .run/keys.
security=${RINGCTL_SECURITY:-}
cd "$(dirname "$0")/../.."

# $security is empty or one word (--insecure): unquoted on purpose, so that empty adds no argument.
# shellcheck disable=SC2086
ringctl() { "$bin/ringctl" "$@" $security; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "writing $keys keys (100-byte values) with ringctl put --stdin"
python3 -c "
import sys
for i in range($keys):
    sys.stdout.write(f'demo-{i}\t{chr(97 + i % 26) * 90}{i:010d}\n')
" > "$run/demo-input.tsv"
start=$(date +%s.%N)
failed=$(ringctl put --stdin < "$run/demo-input.tsv" | { grep -vc $'\tOK$' || true; })
echo "failed writes: $failed"
echo "took $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"

say "events (ringctl watch) while node 4 joins"
ringctl watch --no-snapshot --topic ring --topic migration --topic membership > >(sed 's/^/  event: /') &
watch=$!
trap 'kill $watch 2>/dev/null || true' EXIT
sleep 0.5   # let the subscription connect before the join (PUB drops what a late subscriber missed)
join_start=$(date +%s.%N)
make --no-print-directory start-node N=4
ringctl status --wait 300 --nodes 127.0.0.1:7501,127.0.0.1:7502,127.0.0.1:7503,127.0.0.1:7504 > /dev/null || true
join_end=$(date +%s.%N)

sleep 1.2   # node figures in Health are cached for a second
say "after the join: status (keys per node, arcs, migrations)"
ringctl status --nodes 127.0.0.1:7501,127.0.0.1:7502,127.0.0.1:7503,127.0.0.1:7504 || true
echo "join settled in $(python3 -c "print(f'{$join_end - $join_start:.1f}')") s"

say "every key reads back"
sort "$run/demo-input.tsv" > "$run/demo-expected.tsv"
cut -f1 "$run/demo-input.tsv" | ringctl get --stdin | sort | cmp -s - "$run/demo-expected.tsv" \
  && echo "all $keys keys read back with their values" || echo "MISMATCH: some keys did not read back"

say "node 4 leaves: it hands its arcs back, then placement removes it"
ringctl leave 127.0.0.1:7504
for _ in $(seq 600); do
  ringctl members | grep -q "127.0.0.1:7504" || break
  sleep 0.5
done
make --no-print-directory stop N=4
ringctl status --wait 60 > /dev/null || true
sleep 1.2
kill $watch 2>/dev/null || true
wait $watch 2>/dev/null || true

say "final status"
ringctl status || true
cut -f1 "$run/demo-input.tsv" | ringctl get --stdin | sort | cmp -s - "$run/demo-expected.tsv" \
  && echo "all $keys keys read back after the leave" || echo "MISMATCH after the leave"
