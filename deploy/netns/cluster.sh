#!/usr/bin/env bash
# A Ringstore cluster across Linux network namespaces on one machine: the
# placement service, the lock service and each storage node in a namespace of
# its own, with its own address on a bridge that this (the root) namespace is
# on too, so ringctl runs from here. The Makefile's netns-up, netns-down and
# netns-status call it; deploy/netns/README.md describes the layout.
#
#   cluster.sh up BIN_DIR       make what is missing, start what is not running,
#                               wait until every service serves, print the addresses
#   cluster.sh status BIN_DIR   the namespaces, the processes and `ringctl status`
#   cluster.sh down             stop the processes; remove the namespaces, veths and bridge
#
# Environment: RUN (default .run; keys in RUN/keys as `make keys` writes them,
# pids, logs and data in RUN/netns), NODES (default "1 2 3"), SYNC (the nodes'
# --sync, default full), NETNS_WAIT (seconds `up` waits, default 60).
#
# Only names starting with rsn- (namespaces rsn-placement, rsn-lock,
# rsn-node-N; the root side of each veth pair has its namespace's name; the
# bridge rsn-br0) and addresses in 10.78.0.0/24 are made or removed. No
# forwarding, no NAT: the namespaces reach each other and this namespace only.

# Lists of names and pids are split into words and joined again on purpose.
# shellcheck disable=SC2015,SC2046,SC2086,SC2116
set -Eeuo pipefail

RUN=$(realpath -m "${RUN:-.run}")
KEYS=$RUN/keys
DIR=$RUN/netns
NODES=${NODES:-1 2 3}
SYNC=${SYNC:-full}
WAIT=${NETNS_WAIT:-60}

BRIDGE=rsn-br0
SUBNET=10.78.0.0/24
BRIDGE_ADDRESS=10.78.0.1
# Ports inside each namespace (one service per namespace, so none collide).
PLACEMENT_PORT=7400   # events on 7401
LOCK_PORT=7410        # events on 7411
NODE_PORT=7500
RESP_PORT=6380
# The operations ports by role, as deploy/'s multi-host layouts use them.
PLACEMENT_HTTP=9400
LOCK_HTTP=9410
NODE_HTTP=9500
# A namespace or link of ours, by name.
OURS='^rsn-(placement|lock|node-[0-9]+|br0)$'

say() { echo "netns: $*"; }
die() { echo "netns: $*" >&2; exit 1; }

for n in $NODES; do
  [[ $n =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 200 )) || die "NODES: '$n' is not a node number from 1 to 200"
done
[[ $WAIT =~ ^[0-9]+$ ]] || die "NETNS_WAIT: '$WAIT' is not a number of seconds"

services() { echo placement; echo lock; for n in $NODES; do echo "node-$n"; done; }

# address SERVICE: its address on the bridge.
address() {
  case $1 in
    placement) echo 10.78.0.2 ;;
    lock) echo 10.78.0.3 ;;
    node-*) echo "10.78.0.$((10 + ${1#node-}))" ;;
  esac
}

executable() {
  case $1 in
    placement) echo ringstore-placement ;;
    lock) echo ringstore-lock ;;
    node-*) echo ringstore-node ;;
  esac
}

PLACEMENT=tcp://$(address placement):$PLACEMENT_PORT
PLACEMENT_EVENTS=tcp://$(address placement):$((PLACEMENT_PORT + 1))
LOCKS=tcp://$(address lock):$LOCK_PORT

# Our namespaces and links that exist now (the bridge among the links).
our_namespaces() { ip netns list | awk '{print $1}' | grep -E "$OURS" || true; }
our_links() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E "$OURS" || true; }

# pid_of SERVICE: the pid of its running process, or nothing. A pid counts
# when it is still starting into its namespace (setsid, ip netns exec) or runs
# the service's executable in that namespace; a stale pid file, or a pid that
# another program reuses (a `make up` node, say), does not.
pid_of() {
  local file=$DIR/$1.pid pid args
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  args=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 0
  case $args in
    *"netns exec rsn-$1 "*) echo "$pid" ;;
    *"/$(executable "$1") "*) [ "$(ip netns identify "$pid" 2>/dev/null)" != "rsn-$1" ] || echo "$pid" ;;
  esac
}

tail_log() {
  local log=$DIR/$1.log
  if [ -s "$log" ]; then echo "---- last lines of $log"; tail -n 25 "$log"; echo "----"; else echo "---- $log is empty or missing"; fi
}

# Whether PID runs (an exited process that its parent has not reaped yet does not).
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Waits up to SECONDS for PID to exit; returns 1 if it still runs.
wait_exit() {
  local pid=$1 tenths=$(($2 * 10)) i
  for ((i = 0; i < tenths; i++)); do alive "$pid" || return 0; sleep 0.1; done
  ! alive "$pid"
}

# stop_services SERVICE...: SIGTERM to each at once, then SIGKILL to any still
# running after 15 s, as `make down` does for one.
stop_services() {
  local s pid pids=() names=()
  for s in "$@"; do
    pid=$(pid_of "$s")
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); names+=("$s"); fi
    rm -f "$DIR/$s.pid"
  done
  local deadline=$((SECONDS + 15)) i
  for i in "${!pids[@]}"; do
    wait_exit "${pids[$i]}" $((deadline > SECONDS ? deadline - SECONDS : 0)) && continue
    say "${names[$i]} still running after 15 s, sending SIGKILL"
    kill -KILL "${pids[$i]}" 2>/dev/null || true
    wait_exit "${pids[$i]}" 5 || die "${names[$i]} (pid ${pids[$i]}) does not exit"
  done
  for i in "${!pids[@]}"; do say "${names[$i]} stopped (pid ${pids[$i]})"; done
}

# Every process of ours: the nodes, then lock and placement (the pid files),
# then anything still in one of our namespaces (its pid file lost), which
# only we put there.
stop_all() {
  local ns pids pid
  # shellcheck disable=SC2046
  stop_services $( { ls "$DIR" 2>/dev/null || true; } | sed -n 's/^\(node-[0-9]*\)\.pid$/\1/p' | sort -t- -k2 -n)
  stop_services lock placement
  for ns in $(our_namespaces); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || continue
    say "stopping what still runs in $ns (pids $(echo $pids))"
    kill -TERM $pids 2>/dev/null || true
    for pid in $pids; do wait_exit "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait_exit "$pid" 5 || die "pid $pid in $ns does not exit"; done
  done
}

# Removes every link and namespace of ours: each veth pair from the root side
# first (the namespace's end goes with it), then the namespaces, then the bridge.
remove_network() {
  local name
  for name in $(our_links); do [ "$name" = "$BRIDGE" ] || ip link delete "$name" 2>/dev/null || true; done
  for name in $(our_namespaces); do ip netns delete "$name"; done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  local left
  left=$(echo $(our_namespaces) $(our_links))
  [ -z "$left" ] || die "could not remove: $left"
}

# Whether the bridge, every namespace and every link are there as `up` makes them.
network_complete() {
  ip -4 -o addr show dev "$BRIDGE" 2>/dev/null | grep -q " $BRIDGE_ADDRESS/24 " || return 1
  ip link show "$BRIDGE" 2>/dev/null | grep -q ',UP' || return 1
  local s ns
  for s in $(services); do
    ns=rsn-$s
    ip link show "$ns" 2>/dev/null | grep -q "master $BRIDGE state UP" || return 1
    ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null | grep -q " $(address "$s")/24 " || return 1
    ip -n "$ns" link show lo 2>/dev/null | grep -q ',UP' || return 1
  done
}

# Refuses a subnet that this namespace already uses for something else.
check_subnet_free() {
  local used
  used=$(ip -4 -o addr show to "$SUBNET" | awk '{print $2}' | grep -v "^$BRIDGE\$" || true)
  [ -z "$used" ] || die "$SUBNET is already in use here (addresses on: $(echo $used)); netns-up uses that subnet only, so it stops"
  used=$(ip -4 route show root "$SUBNET" | grep -v " dev $BRIDGE " || true)
  [ -z "$used" ] || die "routes into $SUBNET exist here already ($used); netns-up stops rather than shadow them"
}

create_network() {
  # The first step tells whether this machine lets us make namespaces at all.
  local error
  if ! error=$(ip netns add rsn-placement 2>&1); then
    die "cannot create network namespaces here: \`ip netns add rsn-placement\` failed: $error
netns: netns-up needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run it with sudo, or as root"
  fi
  trap 'trap - ERR; echo "netns: creating the network failed; removing what was made" >&2; remove_network; exit 1' ERR
  ip link add name "$BRIDGE" type bridge forward_delay 0
  # No IPv6 link-local addresses on our links: 10.78.0.x only (a kernel without IPv6 has none anyway).
  ip link set dev "$BRIDGE" addrgenmode none 2>/dev/null || true
  ip addr add "$BRIDGE_ADDRESS/24" dev "$BRIDGE"
  ip link set dev "$BRIDGE" up
  local s ns
  for s in $(services); do
    ns=rsn-$s
    [ "$s" = placement ] || ip netns add "$ns"
    ip -n "$ns" link set dev lo up
    ip link add name "$ns" type veth peer name eth0 netns "$ns"
    ip link set dev "$ns" addrgenmode none 2>/dev/null || true
    ip link set dev "$ns" master "$BRIDGE"
    ip link set dev "$ns" up
    ip -n "$ns" link set dev eth0 addrgenmode none 2>/dev/null || true
    ip -n "$ns" addr add "$(address "$s")/24" dev eth0
    ip -n "$ns" link set dev eth0 up
  done
  trap - ERR
  say "bridge $BRIDGE $BRIDGE_ADDRESS/24 with namespaces $(services | sed 's/^/rsn-/' | paste -sd' ')"
}

# The keys `make keys` writes, a node key for any node it did not make one for
# (added to the allowlist, as `make start-node` does), and the HTTP token.
prepare_keys() {
  local f
  for f in cluster.secret cluster.pub admin.secret allowlist resp-passwords; do
    [ -f "$KEYS/$f" ] || die "$KEYS/$f is missing: run \`make keys\` (netns-up runs with CURVE; INSECURE=1 is not supported)"
  done
  for n in $NODES; do
    if [ ! -f "$KEYS/node-$n.secret" ]; then
      "$BIN/ringctl" keygen "node-$n" --dir "$KEYS" >/dev/null
      echo "node $(cat "$KEYS/node-$n.pub") node-$n" >> "$KEYS/allowlist"
      say "keys: node-$n added to $KEYS/allowlist"
    fi
  done
  if [ ! -f "$KEYS/http.token" ]; then
    (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$KEYS/http.token")
    say "keys: wrote $KEYS/http.token (the operations ports' bearer token)"
  fi
}

# start SERVICE ARGS...: in its namespace, in the background, in a session of
# its own (a Ctrl-C at the terminal does not reach it), unless it runs already.
start_service() {
  local s=$1 pid i
  shift
  pid=$(pid_of "$s")
  if [ -n "$pid" ]; then say "$s: already running (pid $pid)"; return; fi
  mkdir -p "$DIR/$s"
  # The subshell, `setsid` (not a process group leader here) and `ip netns
  # exec` all exec, so $! is the service's own pid. It keeps no descriptor
  # but its log: not the lock of netns-up and netns-down, nor anything make's
  # caller handed down (a pipe or socket that a caller waits on to see make
  # finish, make's jobserver).
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid ip netns exec "rsn-$s" "$BIN/$(executable "$s")" "$@"
  ) >>"$DIR/$s.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/$s.pid"
  # Until the subshell has exec'd, its command line is this script's: wait
  # (briefly) for it to become recognisably the service's, or to end.
  for ((i = 0; i < 50; i++)); do [ -z "$(pid_of "$s")" ] && alive "$pid" || break; sleep 0.1; done
  say "$s: started in rsn-$s (pid $pid), log $DIR/$s.log"
}

start_all() {
  local security=(--server-key "$KEYS/cluster.secret" --allowlist "$KEYS/allowlist")
  local http=(--http-token "$KEYS/http.token")
  local a
  a=$(address placement)
  start_service placement --listen "$PLACEMENT" --publish "$PLACEMENT_EVENTS" --data-dir "$DIR/placement" \
    "${security[@]}" --http-listen "$a:$PLACEMENT_HTTP" "${http[@]}"
  a=$(address lock)
  start_service lock --listen "$LOCKS" --publish "tcp://$a:$((LOCK_PORT + 1))" --data-dir "$DIR/lock" \
    "${security[@]}" --http-listen "$a:$LOCK_HTTP" "${http[@]}"
  for n in $NODES; do
    a=$(address "node-$n")
    start_service "node-$n" --listen "tcp://$a:$NODE_PORT" --advertise "$a:$NODE_PORT" \
      --placement "$PLACEMENT" --placement-events "$PLACEMENT_EVENTS" --data-dir "$DIR/node-$n" --sync "$SYNC" \
      "${security[@]}" --client-key "$KEYS/node-$n.secret" \
      --resp-listen "$a:$RESP_PORT" --resp-passwords "$KEYS/resp-passwords" --http-listen "$a:$NODE_HTTP" "${http[@]}"
  done
}

ringctl() {
  "$BIN/ringctl" "$@" --placement "$PLACEMENT" --locks "$LOCKS" --key "$KEYS/admin.secret" --server-key "$KEYS/cluster.pub"
}

node_list() { for n in $NODES; do printf '%s:%d,' "$(address "node-$n")" "$NODE_PORT"; done | sed 's/,$//'; }

# The services that `ringctl status --json` output ($1) does not show ready:
# placement and lock SERVING, each node SERVING, an up member, at its address.
not_ready() {
  local out=$1 s line
  for s in $(services); do
    case $s in
      placement | lock) line=$(grep -F "\"service\":\"$s\"" <<<"$out" || true) ;;
      *) line=$(grep -F "\"endpoint\":\"tcp://$(address "$s"):$NODE_PORT\"" <<<"$out" || true) ;;
    esac
    grep -qF '"status":"SERVING"' <<<"$line" || { echo "$s"; continue; }
    case $s in
      node-*) grep -qF '"member_state":"up"' <<<"$line" && grep -qF "\"address\":\"$(address "$s"):$NODE_PORT\"" <<<"$line" || echo "$s" ;;
    esac
  done
}

# Waits until ringctl, from this namespace, sees every service ready; on a
# process's exit or the deadline, prints the failing services' logs and fails.
wait_ready() {
  local deadline=$((SECONDS + WAIT)) out waiting exited s
  while :; do
    exited=""
    for s in $(services); do [ -n "$(pid_of "$s")" ] || exited="$exited $s"; done
    if [ -n "$exited" ]; then
      for s in $exited; do tail_log "$s" >&2; done
      die "netns-up failed: exited:$exited (make netns-down removes the rest)"
    fi
    # ringctl's --wait returns as soon as all is settled, else after 2 s.
    out=$(ringctl status --json --timeout 1 --wait 2 --nodes "$(node_list)" 2>&1 || true)
    waiting=$(not_ready "$out")
    [ -n "$waiting" ] || return 0
    if ((SECONDS >= deadline)); then
      echo "netns: not ready after $WAIT s: $(echo $waiting)" >&2
      echo "$out" >&2
      for s in $waiting; do tail_log "$s" >&2; done
      if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ]; then
        echo "netns: note: net.bridge.bridge-nf-call-iptables is 1 here, so traffic between the namespaces crosses this host's iptables FORWARD chain: a DROP policy there (Docker sets one) would block it" >&2
      fi
      die "netns-up failed (make netns-down removes it)"
    fi
  done
}

print_addresses() {
  local rel=${KEYS#"$PWD"/} s a
  echo
  echo "Ringstore across network namespaces, bridge $BRIDGE $BRIDGE_ADDRESS/24 in this namespace:"
  printf '  %-10s %-14s %-33s %-17s %s\n' SERVICE NAMESPACE REQUESTS RESP HTTP
  for s in $(services); do
    a=$(address "$s")
    case $s in
      placement) printf '  %-10s %-14s %-33s %-17s %s\n' "$s" "rsn-$s" "$PLACEMENT (events +1)" - "http://$a:$PLACEMENT_HTTP/ (status page)" ;;
      lock) printf '  %-10s %-14s %-33s %-17s %s\n' "$s" "rsn-$s" "$LOCKS (events +1)" - "http://$a:$LOCK_HTTP/" ;;
      *) printf '  %-10s %-14s %-33s %-17s %s\n' "$s" "rsn-$s" "tcp://$a:$NODE_PORT" "$a:$RESP_PORT" "http://$a:$NODE_HTTP/" ;;
    esac
  done
  local first
  first=$(address "node-${NODES%% *}")
  cat <<EOF

  export RINGSTORE_PLACEMENT=$PLACEMENT RINGSTORE_LOCKS=$LOCKS   # then ringctl put k v, ringctl status
  REDISCLI_AUTH=\$(cat $rel/resp.password) redis-cli -h $first -p $RESP_PORT ping
  curl -H "Authorization: Bearer \$(cat $rel/http.token)" http://$first:$NODE_HTTP/metrics
  (/healthz and /readyz need no token; a browser asks for it as the password of $(address placement):$PLACEMENT_HTTP/)
  pids and logs in ${DIR#"$PWD"/}/; make netns-status; make netns-down
EOF
}

need_tools() {
  command -v ip >/dev/null || die "the \`ip\` tool (iproute2) is not installed: make deps"
  local tool
  for tool in setsid flock realpath; do command -v "$tool" >/dev/null || die "\`$tool\` is not installed"; done
}

need_binaries() {
  BIN=${1:-}
  [ -n "$BIN" ] || die "usage: $0 up|status BIN_DIR"
  local exe
  for exe in ringstore-placement ringstore-lock ringstore-node ringctl; do
    [ -x "$BIN/$exe" ] || die "$BIN/$exe is not built: make build"
  done
}

# One up or down at a time.
take_lock() {
  exec 9>"$DIR/.flock"
  flock -w 120 9 || die "another netns-up or netns-down holds $DIR/.flock"
}

cmd_up() {
  need_tools
  need_binaries "${1:-}"
  [ -z "${INSECURE:-}" ] || die "netns-up runs with CURVE only (the bridge is reachable from this namespace); drop INSECURE"
  mkdir -p "$DIR"
  take_lock
  prepare_keys
  if network_complete; then
    say "namespaces and bridge already up"
  else
    if [ -n "$(our_namespaces)$(our_links)" ]; then
      say "an incomplete network of an earlier run is here: removing it first"
      stop_all
      remove_network
    fi
    check_subnet_free
    create_network
  fi
  local running=1 s
  for s in $(services); do [ -n "$(pid_of "$s")" ] || running=0; done
  if ((running)); then say "already up: every service runs"; fi
  start_all
  wait_ready
  ringctl status --nodes "$(node_list)" || true
  print_addresses
}

cmd_down() {
  need_tools
  if [ -d "$DIR" ]; then take_lock; fi
  if [ -z "$(our_namespaces)$(our_links)" ] && ! ls "$DIR"/*.pid >/dev/null 2>&1; then
    say "nothing is up"
    return 0
  fi
  stop_all
  remove_network
  say "down: processes stopped; namespaces, veths and $BRIDGE removed (data stays in ${DIR#"$PWD"/}/)"
}

cmd_status() {
  need_tools
  need_binaries "${1:-}"
  local s ns pid where healthy=1
  if ip -4 -o addr show dev "$BRIDGE" 2>/dev/null | grep -q " $BRIDGE_ADDRESS/24 "; then
    say "bridge $BRIDGE $BRIDGE_ADDRESS/24"
  else
    say "bridge $BRIDGE: absent"
    healthy=0
  fi
  printf '%-10s %-14s %-12s %-8s %s\n' SERVICE NAMESPACE ADDRESS PID STATE
  for s in $(services); do
    ns=rsn-$s
    pid=$(pid_of "$s")
    if ! ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      where="namespace absent"
      healthy=0
    elif ! ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null | grep -q " $(address "$s")/24 "; then
      where="no address on eth0"
      healthy=0
    else
      where="namespace up"
    fi
    if [ -n "$pid" ]; then
      where="$where, running"
    else
      where="$where, not running"
      healthy=0
    fi
    printf '%-10s %-14s %-12s %-8s %s\n' "$s" "$ns" "$(address "$s")" "${pid:--}" "$where"
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    echo
    ringctl status --nodes "$(node_list)" || healthy=0
  fi
  if ((!healthy)); then
    say "not (fully) up: make netns-up"
    return 1
  fi
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  status) shift; cmd_status "$@" ;;
  *) echo "usage: $0 up BIN_DIR | status BIN_DIR | down" >&2; exit 2 ;;
esac
