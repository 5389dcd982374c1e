"""The Python redis client (redis-py, from PyPI) against Ringstore's RESP port.

Usage: resp_clients.py PORT [PASSWORD]. Prints one line per check and exits 0
when every check passed; the first failure raises (exit 1).
"""
import sys

import redis

port = int(sys.argv[1])
password = sys.argv[2] if len(sys.argv) > 2 else None


def check(what, got, expected):
    if got != expected:
        raise AssertionError(f"{what}: got {got!r}, expected {expected!r}")
    print(f"ok {what}")


for protocol in (2, 3):
    client = redis.Redis(host="127.0.0.1", port=port, password=password, protocol=protocol, socket_timeout=10)
    prefix = f"resp{protocol}:"
    check(f"{prefix} ping", client.ping(), True)
    check(f"{prefix} set", client.set(prefix + "k", b"v\x00\xff"), True)
    check(f"{prefix} get binary value", client.get(prefix + "k"), b"v\x00\xff")
    check(f"{prefix} get missing", client.get(prefix + "missing"), None)
    check(f"{prefix} set nx on an existing key", client.set(prefix + "k", "other", nx=True), None)
    check(f"{prefix} set xx get", client.set(prefix + "k", "v2", xx=True, get=True), b"v\x00\xff")
    check(f"{prefix} mset", client.mset({prefix + "a": "1", prefix + "b": "2"}), True)
    check(f"{prefix} mget", client.mget([prefix + "a", prefix + "b", prefix + "c"]), [b"1", b"2", None])
    check(f"{prefix} exists", client.exists(prefix + "a", prefix + "b", prefix + "c"), 2)
    check(f"{prefix} strlen", client.strlen(prefix + "k"), 2)
    check(f"{prefix} getdel", client.getdel(prefix + "k"), b"v2")
    check(f"{prefix} delete", client.delete(prefix + "a", prefix + "b", prefix + "c"), 2)
    try:
        client.set(prefix + "ttl", "v", ex=10)
        raise AssertionError("SET EX was accepted")
    except redis.ResponseError as error:
        check(f"{prefix} set ex refused", "expiry" in str(error), True)
    pipe = client.pipeline(transaction=False)
    for number in range(200):
        pipe.set(f"{prefix}p{number}", number)
    for number in range(200):
        pipe.get(f"{prefix}p{number}")
    results = pipe.execute()
    check(f"{prefix} pipeline of 400", results, [True] * 200 + [str(n).encode() for n in range(200)])
    if protocol == 3:
        hello = client.execute_command("HELLO", "3")
        check("resp3: hello says proto 3", hello.get(b"proto", hello.get("proto")), 3)
    check(f"{prefix} dbsize is a number", isinstance(client.dbsize(), int), True)
    check(f"{prefix} info replication", "ringstore_n" in client.info("replication"), True)
    client.close()
print("all ok")
