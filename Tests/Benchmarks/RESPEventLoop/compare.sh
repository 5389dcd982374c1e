#!/usr/bin/env bash
# make bench-resp-loop: why the RESP front door runs on the node's own reactor
# rather than SwiftNIO. redis-benchmark PING (32 clients, plain and -P 16)
# against (a) a ringstore-node's RESP port, (b) a SwiftNIO server answering on
# its event loop, and (c) the same NIO server answering after a hop to another
# thread and back, which is what a NIO front door would need, since the
# coordinator lives on the node's reactor thread.
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT
(cd "$here" && swift build -c release >/dev/null)
nio=$(cd "$here" && swift build -c release --show-bin-path)/nioping
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
node_port=$(free_port); direct_port=$(free_port); hop_port=$(free_port)
"$bin/ringstore-node" --insecure --listen "tcp://127.0.0.1:$(free_port)" --placement tcp://127.0.0.1:1 \
  --placement-events tcp://127.0.0.1:2 --data-dir "$scratch/node" --resp-listen "127.0.0.1:$node_port" --log-level error &
"$nio" direct "$direct_port" >/dev/null &
"$nio" hop "$hop_port" >/dev/null &
for port in $node_port $direct_port $hop_port; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
echo "| server | PING -c 32 | PING -c 32 -P 16 |"
echo "|---|---|---|"
for round in 1 2; do
  for entry in "ringstore-node (reactor):$node_port" "NIO, reply on the event loop:$direct_port" "NIO, hop to a reactor thread and back:$hop_port"; do
    name=${entry%:*}; port=${entry##*:}
    plain=$(redis-benchmark -p "$port" -t ping_mbulk -c 32 -n 200000 -q 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
    piped=$(redis-benchmark -p "$port" -t ping_mbulk -c 32 -P 16 -n 1000000 -q 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
    echo "| $name (round $round) | $plain | $piped |"
  done
done
