#!/bin/sh
# ringstore-make-keys DIR NODE...: the secrets of a new cluster, in DIR:
#   cluster.secret/.pub   the services' shared CURVE keypair (--server-key)
#   admin.secret/.pub     the operator's key (ringctl --key; role admin)
#   NODE.secret/.pub      each node's own key (--client-key; role node)
#   allowlist             ROLE PUBLIC-KEY NAME lines for admin and the nodes
#   http-token            the bearer token of /metrics (--http-token)
#   resp-passwords        AUTH passwords of the nodes' RESP ports (admin's in resp.password)
# Everything is mode 0600 (the .pub files 0644). What exists is kept: a second
# run only adds what is missing (a new node's key and allowlist line); then
# reload the services (SIGHUP) so that they read the new allowlist.
# Needs ringctl on PATH (or in RINGCTL).
set -eu
if [ $# -lt 1 ]; then
    echo "usage: ringstore-make-keys DIR [NODE...]" >&2
    exit 64
fi
dir=$1
shift
ringctl=${RINGCTL:-ringctl}
umask 077
mkdir -p "$dir"

key() {
    if [ ! -f "$dir/$1.secret" ]; then
        "$ringctl" keygen "$1" --dir "$dir" >/dev/null
        chmod 644 "$dir/$1.pub"
        echo "ringstore-make-keys: made key $1"
    fi
}

# allow ROLE NAME: list NAME's public key under ROLE unless it is listed.
allow() {
    if ! awk -v name="$2" '$3 == name { found = 1 } END { exit !found }' "$dir/allowlist"; then
        echo "$1 $(cat "$dir/$2.pub") $2" >>"$dir/allowlist"
    fi
}

random_hex() {
    od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

key cluster
key admin
[ -f "$dir/allowlist" ] || echo "# role public-key name (re-read on SIGHUP)" >"$dir/allowlist"
allow admin admin
for node in "$@"; do
    key "$node"
    allow node "$node"
done
if [ ! -f "$dir/http-token" ]; then
    random_hex 32 >"$dir/http-token"
    echo "ringstore-make-keys: made http-token"
fi
if [ ! -f "$dir/resp-passwords" ]; then
    random_hex 16 >"$dir/resp.password"
    echo "# role password name (AUTH on the nodes' RESP ports; re-read on SIGHUP)" >"$dir/resp-passwords"
    echo "admin $(cat "$dir/resp.password") operator" >>"$dir/resp-passwords"
    echo "ringstore-make-keys: made resp-passwords (the password is in resp.password)"
fi
