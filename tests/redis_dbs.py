"""Redis databases 1-15 of the test Redis server, shared safely by every pytest process on it (pytest-xdist
workers, or the test runs of other checkouts pointed at the same server).

A process claims a database before it flushes and uses it: a key in database 0 names the owner (host
and pid), set only if absent. A database given back (`release_redis_url`, when a stack stops) stays
this process's and is handed out again, emptied first; so a process holds as many as it uses at once.
Claims are dropped at exit; one left by a process that died (same host, pid gone) is taken over, and
any claim lapses after `CLAIM_SECONDS`.
"""

from __future__ import annotations

import atexit
import os
import random
import socket
import time

import redis

REDIS_BASE = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
DATABASES = range(1, 16)
CLAIM_SECONDS = 6 * 3600
OWNER = f"{socket.gethostname()}:{os.getpid()}"

_owned: set[int] = set()
_free: list[int] = []  # owned and given back, the longest-given-back first


def _claim_key(index: int) -> str:
    return f"conveyor-test:claim:db{index}"


def _holder_is_dead(value: bytes | None) -> bool:
    if value is None:
        return True
    host, _, pid = value.decode().rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _try_claim(admin: redis.Redis) -> int | None:
    for index in random.sample(DATABASES, len(DATABASES)):
        if index in _owned:
            continue
        key = _claim_key(index)
        if admin.set(key, OWNER, nx=True, ex=CLAIM_SECONDS):
            return index
        if _holder_is_dead(admin.get(key)):
            admin.delete(key)  # a claim left by a process that died
            if admin.set(key, OWNER, nx=True, ex=CLAIM_SECONDS):
                return index
    return None


def new_redis_url(timeout: float = 120) -> str:
    """The URL of a Redis database of this process's own until `release_redis_url`, emptied before use."""
    if _free:
        index = _free.pop(0)
    else:
        with redis.Redis.from_url(f"{REDIS_BASE}/0") as admin:
            deadline = time.monotonic() + timeout
            while (index := _try_claim(admin)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"every Redis database of {REDIS_BASE} is held by another test process")
                time.sleep(0.2)
        _owned.add(index)
    url = f"{REDIS_BASE}/{index}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def release_redis_url(url: str) -> None:
    """Give back a database from `new_redis_url`: this process may hand it out again."""
    index = int(url.rsplit("/", 1)[1])
    if index in _owned and index not in _free:
        _free.append(index)


@atexit.register
def _release_all() -> None:
    if not _owned:
        return
    try:
        with redis.Redis.from_url(f"{REDIS_BASE}/0") as admin:
            for index in _owned:
                key = _claim_key(index)
                if admin.get(key) == OWNER.encode():
                    admin.delete(key)
    except redis.RedisError:
        pass  # the claims lapse on their own
