"""A private, throw-away ``redis-server`` on a free loopback port, for tests that break Redis."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = os.environ.get("RESILIENCE_TEST_REDIS_SERVER") or shutil.which("redis-server")


def free_port(below: int = 65536) -> int:
    """A loopback port nobody listens on (``below``: Cluster needs port + 10000 free too)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < below:
            return port
    raise RuntimeError(f"no free port below {below}")


class RedisProcess:
    """One ``redis-server`` child: no persistence, loopback only, its own temp dir.

    ``stop()``/``start()`` keep the port so clients reconnect to the same URL; ``pause()`` and
    ``resume()`` send SIGSTOP/SIGCONT to simulate a hung server (connections accept but never
    answer).
    """

    def __init__(
        self,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        sentinel_for: tuple[str, RedisProcess] | None = None,
    ) -> None:
        """``sentinel_for=(service_name, master)`` runs a Sentinel watching ``master`` instead."""
        if not REDIS_SERVER:
            raise RuntimeError("redis-server not found (set RESILIENCE_TEST_REDIS_SERVER)")
        cluster = "--cluster-enabled" in extra_args
        self.port = port or free_port(55536 if cluster else 65536)
        self.host = "127.0.0.1"
        self.extra_args = tuple(extra_args)
        self.sentinel_for = sentinel_for
        self.dir = Path(tempfile.mkdtemp(prefix="resilience-redis-"))
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def url_for_db(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisProcess:
        if self.running:
            return self
        if self.sentinel_for is not None:
            return self._start_sentinel(timeout)
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--databases", "64",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.paused = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self._log_tail()
                self.proc = None
                raise RuntimeError(f"redis-server exited at start: {err}{log}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def _start_sentinel(self, timeout: float) -> RedisProcess:
        service, master = self.sentinel_for  # type: ignore[misc]
        conf = self.dir / "sentinel.conf"  # Sentinel rewrites its config: it must be a file
        conf.write_text(
            f"port {self.port}\nbind {self.host}\ndir {self.dir}\n"
            f"logfile {self.dir / 'redis.log'}\n"
            f"sentinel monitor {service} {master.host} {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
        )
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [REDIS_SERVER, str(conf), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is None and self.ping():
                return self
            time.sleep(0.02)
        log = self._log_tail()
        self.stop()
        raise RuntimeError(f"redis sentinel did not start: {log}")

    def _log_tail(self) -> str:
        try:
            return (self.dir / "redis.log").read_text()[-2000:]
        except OSError:
            return ""

    def ping(self, timeout: float = 0.5) -> bool:
        """True when the server answers ``PING`` (raw RESP, so this works without redis-py)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        # Wait until the port is really free, so start() can bind it again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.ping(0.05):
            time.sleep(0.02)

    def restart(self) -> RedisProcess:
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections but nothing is ever answered."""
        assert self.proc is not None and self.proc.poll() is None, "server not running"
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort: never leak a server past the test run
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                if self.paused:
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            except OSError:
                pass
