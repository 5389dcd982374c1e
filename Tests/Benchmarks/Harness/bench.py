#!/usr/bin/env python3
"""Ringstore's benchmarks side by side, in one run, on this machine.

Measures, one after the other so they do not share the cores:
  (a) the transport floor: raw libzmq (Tests/Benchmarks/Harness/zmq-floor.c:
      REQ clients, a thread each, echoing through a ROUTER served by one
      thread, the floor the targets use; and one pipelined DEALER keeping as
      many in flight, the transport's best case) and the project's own RPC
      layer (`ringctl bench echo` against a node), at each concurrency;
  (b) `ringctl bench kv` at N=1 and at N=3 W=2 R=2, at each concurrency, on a
      cluster of placement, lock service and three nodes that this script
      starts on free ports in a scratch directory and stops after;
  (c) `redis-benchmark` against a redis-server started here on a free port with
      persistence off, plain and pipelined (-P 16), at the same concurrency
      and value size;
  (d) the ring and storage-engine microbenchmarks.
Prints one table of figures and ratios (each against a baseline measured in
the same run) and writes it, with the machine and the command, as Markdown.

  bench.py --bin DIR [--out FILE] [--smoke] [--sync normal|full]

--smoke runs every part briefly (the harness's own test, in `make test`):
figures from it mean nothing. Exits 1 when any part failed or any figure is
missing.
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONCURRENCY = [32, 256]
VALUE_SIZE = 100

# Targets of issue 13: (row key, baseline key, least ratio).
TARGETS = {
    ("get", 1, 32): ("floor", 32, 0.7),
    ("put", 1, 32): ("floor", 32, 0.5),
    ("put", 3, 32): ("floor", 32, 0.3),
    ("get", 3, 32): ("floor", 32, 0.35),
    ("get", 1, 256): ("redis_pipelined_get", 256, 0.2),
}


class BenchError(Exception):
    pass


def log(message):
    print(message, file=sys.stderr, flush=True)


def free_port(taken):
    """A free loopback port below the kernel's ephemeral range (a port from
    that range can be taken by any outgoing connection before a service binds
    it), checked with a bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(1000):
        port = random.randrange(20000, max(20001, low - 1))
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise BenchError("no free port found")


def run(command, timeout, what):
    """Runs a command, returns its stdout; raises with its stderr on failure."""
    log("  $ " + " ".join(command))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: no answer within {timeout} s")
    if done.returncode != 0:
        raise BenchError(f"{what} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def json_line(output, what):
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"{what} printed no JSON line: {output[-500:]}")


class Services:
    """Processes this run started; stopped (TERM, then KILL) at the end."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.processes = []

    def start(self, name, command):
        log_path = os.path.join(self.scratch, name + ".log")
        log(f"  starting {name}: " + " ".join(command))
        process = subprocess.Popen(command, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        self.processes.append((name, process, log_path))
        return process

    def check_alive(self):
        for name, process, log_path in self.processes:
            if process.poll() is not None:
                tail = open(log_path, errors="replace").read()[-1500:]
                raise BenchError(f"{name} exited with {process.returncode}; its log ends:\n{tail}")

    def stop_all(self):
        for _, process, _ in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, process, _ in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


def wait_for_redis(port, deadline_seconds=10):
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"redis-server on port {port} did not answer PING within {deadline_seconds} s")


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) // (1024 * 1024)} GiB"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}){memory}, Linux {platform.release()}"


def git_commit():
    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def redis_version(server):
    output = run([server, "--version"], 10, "redis-server --version")
    for word in output.split():
        if word.startswith("v="):
            return word[2:]
    return output.strip()


def redis_benchmark(port, clients, pipeline, requests):
    """{'set': rps, 'get': rps} from redis-benchmark's CSV output."""
    command = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-d", str(VALUE_SIZE),
               "-n", str(requests), "-t", "set,get", "-r", "100000", "--csv"]
    if pipeline > 1:
        command += ["-P", str(pipeline)]
    output = run(command, 300, "redis-benchmark")
    rates = {}
    for line in output.splitlines():
        fields = [field.strip('"') for field in line.split(",")]
        if len(fields) >= 2 and fields[0] in ("SET", "GET"):
            rates[fields[0].lower()] = float(fields[1])
    if set(rates) != {"set", "get"}:
        raise BenchError(f"redis-benchmark printed no SET and GET figures: {output[-500:]}")
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="directory of the built executables (swift build --show-bin-path)")
    parser.add_argument("--out", help="write the Markdown report here")
    parser.add_argument("--smoke", action="store_true", help="run every part briefly; the figures mean nothing")
    parser.add_argument("--sync", choices=["normal", "full"], default="normal",
                        help="the nodes' --sync (default normal: redis runs with persistence off)")
    parser.add_argument("--command", default="make bench", help="the command to name in the report")
    args = parser.parse_args()

    smoke = args.smoke
    keys = 300 if smoke else 50000
    echo_calls = 2000 if smoke else 100000
    floor_seconds = 0.5 if smoke else 3
    redis_requests = 2000 if smoke else 200000
    binary = lambda name: os.path.join(args.bin, name)
    for name in ["ringstore-placement", "ringstore-lock", "ringstore-node", "ringctl",
                 "ringstore-bench-ring", "ringstore-bench-storage"]:
        if not os.access(binary(name), os.X_OK):
            raise BenchError(f"{binary(name)} is missing: build first")
    for tool in ["redis-server", "redis-benchmark", "gcc", "pkg-config"]:
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (make bench installs it)")

    scratch = tempfile.mkdtemp(prefix="ringstore-bench-")
    services = Services(scratch)
    taken = set()
    figures = {}
    details = {}
    try:
        # (a) the raw libzmq floor.
        log("== transport floor: raw libzmq ==")
        probe = os.path.join(scratch, "zmq-floor")
        flags = run(["pkg-config", "--cflags", "--libs", "libzmq"], 30, "pkg-config libzmq").split()
        run(["gcc", "-O2", "-pthread", os.path.join(HERE, "zmq-floor.c"), "-o", probe] + flags, 120, "gcc zmq-floor.c")
        for concurrency in CONCURRENCY:
            for mode, key in (("req", "floor"), ("dealer", "pipelined_floor")):
                result = json_line(run([probe, "--mode", mode, "--in-flight", str(concurrency), "--payload", str(VALUE_SIZE),
                                        "--seconds", str(floor_seconds)], 120, "zmq-floor"), "zmq-floor")
                figures[(key, concurrency)] = result["round_trips_per_s"]

        # The cluster: placement, lock service, three nodes; with CURVE when secured.
        resp_port = free_port(taken)

        def start_cluster(secured):
            log("== cluster" + (" with CURVE ==" if secured else " =="))
            placement = f"tcp://127.0.0.1:{free_port(taken)}"
            placement_events = f"tcp://127.0.0.1:{free_port(taken)}"
            locks = f"tcp://127.0.0.1:{free_port(taken)}"
            lock_events = f"tcp://127.0.0.1:{free_port(taken)}"
            quiet = ["--log-level", "warning"]
            keys_dir = os.path.join(scratch, "keys-secured" if secured else "keys")
            # Without CURVE, --insecure everywhere: the services refuse to start
            # without keys otherwise, and ringctl must not pick up a local
            # cluster's keys (.run/keys) from the working directory.
            server, node_keys, client = ["--insecure"], {}, ["--insecure"]
            if secured:
                names = ["cluster", "admin"] + [f"node-{number}" for number in (1, 2, 3)]
                public = {name: run([binary("ringctl"), "keygen", name, "--dir", keys_dir], 60, "ringctl keygen").strip()
                          for name in names}
                with open(os.path.join(keys_dir, "allowlist"), "w") as allowlist:
                    allowlist.write(f"admin {public['admin']} admin\n")
                    for number in (1, 2, 3):
                        allowlist.write(f"node {public[f'node-{number}']} node-{number}\n")
                server = ["--server-key", os.path.join(keys_dir, "cluster.secret"), "--allowlist", os.path.join(keys_dir, "allowlist")]
                node_keys = {number: ["--client-key", os.path.join(keys_dir, f"node-{number}.secret")] for number in (1, 2, 3)}
                client = ["--key", os.path.join(keys_dir, "admin.secret"), "--server-key", os.path.join(keys_dir, "cluster.pub")]
            suffix = "-curve" if secured else ""
            services.start("placement" + suffix, [binary("ringstore-placement"), "--listen", placement, "--publish", placement_events,
                                                  "--data-dir", os.path.join(scratch, "placement" + suffix)] + quiet + server)
            services.start("lock" + suffix, [binary("ringstore-lock"), "--listen", locks, "--publish", lock_events,
                                             "--data-dir", os.path.join(scratch, "lock" + suffix)] + quiet + server)
            nodes = []
            # The plain cluster's node 1 also serves RESP, for redis-benchmark.
            resp = [] if secured else ["--resp-listen", f"127.0.0.1:{resp_port}"]
            for number in (1, 2, 3):
                address = f"127.0.0.1:{free_port(taken)}"
                nodes.append(address)
                services.start(f"node-{number}{suffix}", [
                    binary("ringstore-node"), "--listen", f"tcp://{address}", "--placement", placement,
                    "--placement-events", placement_events, "--data-dir", os.path.join(scratch, f"node-{number}{suffix}"),
                    "--sync", args.sync] + quiet + server + node_keys.get(number, []) + (resp if number == 1 else []))
            cluster = ["--placement", placement, "--locks", locks, "--placement-events", placement_events,
                       "--lock-events", lock_events] + client
            run([binary("ringctl"), "status", "--wait", "60", "--nodes", ",".join(nodes)] + cluster, 90, "ringctl status --wait")
            return nodes, cluster

        def echo_bench(nodes, cluster, concurrency):
            return json_line(run([binary("ringctl"), "bench", "echo", "--json", "--target", nodes[0], "--requests", "0",
                                  "--throughput-requests", str(echo_calls), "--concurrency", str(concurrency),
                                  "--payload", str(VALUE_SIZE)] + cluster, 600, "ringctl bench echo"), "ringctl bench echo")

        def kv_bench(cluster, quorum, concurrency):
            return json_line(run([binary("ringctl"), "bench", "kv", "--json", "--keys", str(keys),
                                  "--value-size", str(VALUE_SIZE), "--concurrency", str(concurrency)]
                                 + quorum + cluster, 1800, "ringctl bench kv"), "ringctl bench kv")

        nodes, cluster = start_cluster(secured=False)
        services.check_alive()

        # (a) the project's RPC layer: Echo to a node.
        log("== transport floor: the project's RPC layer ==")
        for concurrency in CONCURRENCY:
            result = echo_bench(nodes, cluster, concurrency)
            figures[("echo", concurrency)] = result["throughput_rps"]
            details[("echo", concurrency)] = result

        # (b) the key-value path.
        log("== key-value path ==")
        settings = {}
        for replicas in (1, 3):
            quorum = ["--n", "1", "--w", "1", "--r", "1"] if replicas == 1 else ["--n", "3", "--w", "2", "--r", "2"]
            for concurrency in CONCURRENCY:
                result = kv_bench(cluster, quorum, concurrency)
                services.check_alive()
                settings[replicas] = f"N={result['n']} W={result['w']} R={result['r']}, sync {result['sync']}"
                for operation in ("put", "get"):
                    figures[(operation, replicas, concurrency)] = result[f"{operation}_ops_per_s"]
                    details[(operation, replicas, concurrency)] = result
        # (b'') the Redis protocol: redis-benchmark against node 1's RESP port
        # (N=3, W=2, R=2: the nodes' defaults), as the issue asks: -c 32 -d 100,
        # plain and -P 16. Redis gets the same commands below.
        log("== redis-benchmark against Ringstore's RESP port ==")
        for pipeline in (1, 16):
            rates = redis_benchmark(resp_port, 32, pipeline, redis_requests)
            for operation in ("set", "get"):
                figures[("resp", operation, pipeline)] = rates[operation]
        services.check_alive()
        # The lock service, for the record (not in the table).
        lock_result = json_line(run([binary("ringctl"), "bench", "lock", "--json", "--count", "50" if smoke else "2000"]
                                    + cluster, 600, "ringctl bench lock"), "ringctl bench lock")
        services.stop_all()

        # (b') CURVE's cost: the same echo and N=1 key-value runs on a cluster
        # with CURVE on every socket, in this run.
        nodes, cluster = start_cluster(secured=True)
        services.check_alive()
        figures[("curve_echo", 32)] = echo_bench(nodes, cluster, 32)["throughput_rps"]
        result = kv_bench(cluster, ["--n", "1", "--w", "1", "--r", "1"], 32)
        for operation in ("put", "get"):
            figures[(f"curve_{operation}", 1, 32)] = result[f"{operation}_ops_per_s"]
        services.check_alive()
        services.stop_all()

        # (c) Redis, persistence off.
        log("== redis ==")
        redis_port = free_port(taken)
        version = redis_version("redis-server")
        services.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
                                 "--dir", scratch])
        wait_for_redis(redis_port)
        for concurrency in CONCURRENCY:
            plain = redis_benchmark(redis_port, concurrency, 1, redis_requests)
            # Pipelined: clients x 16 = the same number in flight.
            pipelined = redis_benchmark(redis_port, max(1, concurrency // 16), 16, redis_requests * 4)
            for operation in ("set", "get"):
                figures[(f"redis_{operation}", concurrency)] = plain[operation]
                figures[(f"redis_pipelined_{operation}", concurrency)] = pipelined[operation]
        for pipeline in (1, 16):
            rates = redis_benchmark(redis_port, 32, pipeline, redis_requests)
            for operation in ("set", "get"):
                figures[("redis_c32", operation, pipeline)] = rates[operation]
        services.stop_all()

        # (d) microbenchmarks.
        log("== ring and storage engine ==")
        ring_output = run([binary("ringstore-bench-ring")], 600, "ringstore-bench-ring")
        storage_command = [binary("ringstore-bench-storage"), "--dir", scratch]
        if smoke:
            storage_command += ["--rows", "10000", "--batches", "10000"]
        storage_output = run(storage_command, 1200, "ringstore-bench-storage")
        for line in storage_output.splitlines():
            if line.startswith("apply, batch 10000, sync normal ") and "checkpoint" not in line:
                figures["engine_10k"] = int(line.split()[-2])
        if "engine_10k" not in figures:
            raise BenchError("ringstore-bench-storage printed no 'apply, batch 10000, sync normal' line")
    finally:
        services.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)

    report = render(args, figures, details, settings, version, ring_output, storage_output, lock_result, keys,
                    redis_requests)
    print(report)
    if args.out:
        with open(args.out, "w") as out:
            out.write(report)
        log(f"wrote {args.out}")
    missing = [key for key, value in figures.items() if not value or value <= 0]
    if missing:
        raise BenchError(f"figures missing or zero: {missing}")


def render(args, figures, details, settings, redis_version_text, ring_output, storage_output, lock_result, keys,
           redis_requests):
    def rate(value):
        return f"{value / 1000:,.1f}k/s" if value >= 1000 else f"{value:,.0f}/s"

    def ratio(value, baseline):
        if not baseline:
            return "n/a"
        share = value / baseline
        return f"{share:.2f}x" if share >= 0.1 else f"{share:.3f}x"

    def latency(result, operation):
        return f"{result.get(operation + '_p50_us', 0) / 1000:.2f} / {result.get(operation + '_p99_us', 0) / 1000:.2f} / " \
               f"{result.get(operation + '_p999_us', 0) / 1000:.2f} ms"

    lines = []
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append("# Benchmarks")
    lines.append("")
    if args.smoke:
        lines.append("**Smoke run: every part ran briefly to test the harness; these figures mean nothing.**")
        lines.append("")
    lines.append(f"Measured {stamp} at commit {git_commit()} by `{args.command}` on {machine()}. "
                 f"Every row ran in this one run, one at a time; ratios compare figures of this run only "
                 f"(an absolute figure moves about 30% between runs on a shared machine). "
                 f"Values are {VALUE_SIZE} bytes. Ringstore: {keys:,} keys per `ringctl bench kv` phase, nodes at "
                 f"`--sync {args.sync}`; Redis {redis_version_text} with persistence off, {redis_requests:,} requests "
                 f"per plain run.")
    lines.append("")
    lines.append("The floor is raw libzmq (`Tests/Benchmarks/Harness/zmq-floor.c`): that many REQ clients, one thread each, "
                 "echoing through a ROUTER served by one thread; the targets of issue 13 are ratios to it. The pipelined "
                 "floor is the same ROUTER with one DEALER keeping that many requests outstanding, the best the "
                 "transport does here. Redis -P 16 runs in-flight/16 clients with 16 pipelined requests each, so as "
                 "many requests are in flight as in the row. p50 / p99 / p99.9 are per-request latencies of the "
                 "successful requests.")
    lines.append("")
    lines.append("| path | in flight | figure | p50 / p99 / p99.9 | vs floor | vs pipelined floor | vs Redis (same op, plain) | vs Redis -P 16 | target | met |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for concurrency in CONCURRENCY:
        floor = figures[("floor", concurrency)]
        pipelined = figures[("pipelined_floor", concurrency)]
        lines.append(f"| transport floor, raw libzmq, REQ threads | {concurrency} | {rate(floor)} | | 1.00x | {ratio(floor, pipelined)} | | | | |")
        lines.append(f"| pipelined floor, raw libzmq, one DEALER | {concurrency} | {rate(pipelined)} | | {ratio(pipelined, floor)} | 1.00x | | | | |")
        echo = figures[("echo", concurrency)]
        echo_result = details[("echo", concurrency)]
        lines.append(f"| Echo over the project's RPC layer | {concurrency} | {rate(echo)} | {latency(echo_result, 'loaded')} | "
                     f"{ratio(echo, floor)} | {ratio(echo, pipelined)} | | | | |")
    for replicas in (1, 3):
        for operation in ("get", "put"):
            for concurrency in CONCURRENCY:
                value = figures[(operation, replicas, concurrency)]
                floor = figures[("floor", concurrency)]
                redis_op = "get" if operation == "get" else "set"
                redis_plain = figures[(f"redis_{redis_op}", concurrency)]
                redis_pipelined = figures[(f"redis_pipelined_{redis_op}", concurrency)]
                target = TARGETS.get((operation, replicas, concurrency))
                target_text, met = "", ""
                if target:
                    baseline = figures[(target[0], target[1])]
                    target_text = f">= {target[2]}x {'floor' if target[0] == 'floor' else 'Redis -P 16'}"
                    met = "yes" if value / baseline >= target[2] else "no"
                lines.append(f"| {operation}, {settings[replicas]} | {concurrency} | {rate(value)} | "
                             f"{latency(details[(operation, replicas, concurrency)], operation)} | {ratio(value, floor)} | "
                             f"{ratio(value, figures[('pipelined_floor', concurrency)])} | "
                             f"{ratio(value, redis_plain)} | {ratio(value, redis_pipelined)} | {target_text} | {met} |")
    for concurrency in CONCURRENCY:
        for operation in ("set", "get"):
            for label, key in ((f"Redis {operation.upper()}", f"redis_{operation}"),
                               (f"Redis {operation.upper()} -P 16", f"redis_pipelined_{operation}")):
                value = figures[(key, concurrency)]
                lines.append(f"| {label} | {concurrency} | {rate(value)} | | {ratio(value, figures[('floor', concurrency)])} | "
                             f"{ratio(value, figures[('pipelined_floor', concurrency)])} | | | | |")
    engine = figures["engine_10k"]
    lines.append(f"| storage engine, batches of 10,000 rows, `--sync normal` | | {engine:,} rows/s | | | | | | >= 150,000 rows/s | "
                 f"{'yes' if engine >= 150000 else 'no'} |")
    lines.append("")
    lines.append("## The Redis protocol: `redis-benchmark -t set,get -c 32 -d 100` against Ringstore and Redis (same run)")
    lines.append("")
    lines.append("The same redis-benchmark command against node 1's RESP port (`--resp-listen`; N=3, W=2, R=2, "
                 f"sync {args.sync}: every SET is a quorum write to three replicas, every GET a quorum read of two) and "
                 "against redis-server (one process, persistence off), plain and with `-P 16`.")
    lines.append("")
    lines.append("| command | Ringstore RESP | Redis | Ringstore / Redis |")
    lines.append("|---|---|---|---|")
    for pipeline in (1, 16):
        for operation in ("set", "get"):
            ours, theirs = figures[("resp", operation, pipeline)], figures[("redis_c32", operation, pipeline)]
            label = f"{operation.upper()}" + (" -P 16" if pipeline > 1 else "")
            lines.append(f"| {label} | {rate(ours)} | {rate(theirs)} | {ratio(ours, theirs)} |")
    lines.append("")
    lines.append("## CURVE's cost (same run, 32 in flight, N=1 W=1 R=1)")
    lines.append("")
    lines.append("The same `ringctl bench` runs on a second cluster with CurveZMQ on every socket (keys from `ringctl keygen`, "
                 "the client and the nodes on the allowlist), against the plain cluster above.")
    lines.append("")
    lines.append("| path | plain | CURVE | CURVE / plain |")
    lines.append("|---|---|---|---|")
    for label, plain_key, curve_key in [("Echo over the RPC layer", ("echo", 32), ("curve_echo", 32)),
                                        ("put", ("put", 1, 32), ("curve_put", 1, 32)),
                                        ("get", ("get", 1, 32), ("curve_get", 1, 32))]:
        plain, curve = figures[plain_key], figures[curve_key]
        lines.append(f"| {label} | {rate(plain)} | {rate(curve)} | {ratio(curve, plain)} |")
    lines.append("")
    lines.append("## Lock service (`ringctl bench lock`, on the same cluster)")
    lines.append("")
    for label, key in [("uncontended acquire + release", "acquire_release"), ("handoff, release to the next waiter's grant", "handoff")]:
        lines.append(f"- {label}: p50 {lock_result.get(key + '_p50_us', 0) / 1000:.2f} ms, "
                     f"p99 {lock_result.get(key + '_p99_us', 0) / 1000:.2f} ms, max {lock_result.get(key + '_max_us', 0) / 1000:.2f} ms")
    lines.append("")
    lines.append("## Ring microbenchmark (`ringstore-bench-ring`)")
    lines.append("")
    lines.append("```")
    lines.extend(line for line in ring_output.splitlines() if line.strip())
    lines.append("```")
    lines.append("")
    lines.append("## Storage engine microbenchmark (`ringstore-bench-storage`)")
    lines.append("")
    lines.append("```")
    lines.extend(line for line in storage_output.splitlines() if line.strip())
    lines.append("```")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        log(f"bench: {error}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
