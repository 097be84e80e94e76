"""A throw-away Redis Sentinel deployment on loopback: master, replica and three sentinels."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis as redis_py

from tests.support.redisproc import REDIS_SERVER, RedisProcess, free_port

# Debian's ``redis-sentinel`` package; ``redis-server --sentinel`` is the same program.
REDIS_SENTINEL = shutil.which("redis-sentinel")


class SentinelProcess:
    """One sentinel (quorum 2 of 3), failing a master over ``down_after_ms`` after it stops."""

    def __init__(self, service: str, master: RedisProcess, down_after_ms: int) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="resilience-sentinel-"))
        self.service = service
        self.master = master
        self.down_after_ms = down_after_ms
        self.proc: subprocess.Popen | None = None

    def start(self) -> SentinelProcess:
        conf = self.dir / "sentinel.conf"  # Sentinel rewrites its config: it must be a file
        conf.write_text(
            f"port {self.port}\nbind {self.host}\ndaemonize no\ndir {self.dir}\n"
            f"logfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {self.service} {self.master.host} {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.service} 10000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        argv = [REDIS_SENTINEL, str(conf)] if REDIS_SENTINEL else [REDIS_SERVER, str(conf)]
        if not REDIS_SENTINEL:
            argv.append("--sentinel")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def client(self) -> redis_py.Redis:
        return redis_py.Redis(self.host, self.port, socket_timeout=2, decode_responses=True)

    def log(self) -> str:
        try:
            return (self.dir / "sentinel.log").read_text()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelDeployment:
    """``master`` + ``replica`` (replicating it) + three sentinels watching ``service``.

    ``start()`` returns once every sentinel knows the replica and the two other sentinels, so a
    failover can be agreed at once. ``master_address()`` asks a sentinel who the master is now.
    """

    def __init__(self, service: str = "resilience", down_after_ms: int = 1000) -> None:
        self.service = service
        self.master = RedisProcess()
        self.replica = RedisProcess(
            extra_args=("--replicaof", self.master.host, str(self.master.port))
        )
        self.sentinels = [SentinelProcess(service, self.master, down_after_ms) for _ in range(3)]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(s.host, s.port) for s in self.sentinels]

    def start(self, timeout: float = 30.0) -> SentinelDeployment:
        if not REDIS_SERVER:
            raise RuntimeError("redis-server not found")
        self.master.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        deadline = time.monotonic() + timeout
        while not self._settled():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sentinels did not settle: {self.sentinels[0].log()}")
            time.sleep(0.1)
        return self

    def _settled(self) -> bool:
        try:
            with redis_py.Redis.from_url(self.replica.url, socket_timeout=1) as replica:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    state = client.sentinel_master(self.service)
                    if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                        return False
        except (redis_py.RedisError, OSError):
            return False
        return True

    def master_address(self) -> tuple[str, int] | None:
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    host, port = client.sentinel_get_master_addr_by_name(self.service)
                    return host, int(port)
            except (redis_py.RedisError, OSError, TypeError):
                continue
        return None

    def failover(self) -> None:
        """A graceful, operator-requested failover: the old master becomes a (READONLY) replica."""
        with self.sentinels[0].client() as client:
            client.sentinel_failover(self.service)

    def wait_for_new_master(self, old: tuple[str, int], timeout: float = 30.0) -> float:
        """Seconds until the sentinels name a master other than ``old``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            address = self.master_address()
            if address is not None and address != old:
                return time.monotonic() - start
            time.sleep(0.05)
        raise RuntimeError(f"no failover within {timeout}s: {self.sentinels[0].log()}")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.close()
        self.master.close()

    def __enter__(self) -> SentinelDeployment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
