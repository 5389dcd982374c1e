#!/bin/bash
# ringstore-healthcheck [PATH]: GET PATH (default /healthz) from this
# container's HTTP listener, RINGSTORE_HTTP_LISTEN (HOST:PORT), and succeed on
# 200. Bash's /dev/tcp does the HTTP: the slim image has no curl or wget.
# /healthz and /readyz need no token.
set -euo pipefail
path=${1:-/healthz}
listen=${RINGSTORE_HTTP_LISTEN:-}
if [[ -z $listen || $listen != *:* ]]; then
    echo "ringstore-healthcheck: RINGSTORE_HTTP_LISTEN is '${listen}', not HOST:PORT (is the HTTP listener on?)" >&2
    exit 1
fi
host=${listen%:*}
port=${listen##*:}
host=${host#[}
host=${host%]}
# A wildcard listener answers on loopback.
case $host in
    "" | "*" | 0.0.0.0) host=127.0.0.1 ;;
    ::) host=::1 ;;
esac
if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "ringstore-healthcheck: cannot connect to $host:$port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status=""
IFS= read -r -t 5 status <&3 || true
exec 3<&-
if [[ $status =~ ^HTTP/1\.[01]\ 200[\ $'\r'] ]]; then
    exit 0
fi
echo "ringstore-healthcheck: GET $path on $host:$port: ${status:-no answer}" >&2
exit 1
