"""Start the real `batchyard` CLI as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

BATCHYARD = [sys.executable, "-m", "batchyard.cli"]
ADMIN_KEY = "sk-by-admin01-for-tests-only-0123456789abcdef"
"""Test servers start with this `--admin-key` unless a test sets BATCHYARD_ADMIN_KEY."""
HEADERS = {"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"}
"""What curl sends: the 0.x SDK's auth header and version."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Proc:
    def __init__(
        self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        # Tests run on the fake engine unless they ask for another with --engine.
        env = {
            "BATCHYARD_ENGINE": "fake",
            "BATCHYARD_ADMIN_KEY": ADMIN_KEY,
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.popen = subprocess.Popen(
            [*BATCHYARD, *self.args], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, like a crash."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Server(Proc):
    def __init__(
        self,
        database: Path | str,
        log_path: Path,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.database = database
        self.base_url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            ["serve", "--port", str(self.port), "--database", str(database), *extra],
            log_path,
            env,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log()}")


class WorkerProc(Proc):
    def __init__(self, database: Path | str, log_path: Path, extra: Sequence[str] = ()) -> None:
        super().__init__(["worker", "--database", str(database), *extra], log_path)


class PeakRss:
    """The highest RSS a process reaches inside a `with` block, sampled every 10 ms:

    with PeakRss(server.popen.pid) as rss: ...
    rss.growth  # peak minus the RSS at entry
    """

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self.before = self.peak = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self.before = self.peak = self._proc.memory_info().rss
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._sampler.join()

    @property
    def growth(self) -> int:
        return self.peak - self.before
