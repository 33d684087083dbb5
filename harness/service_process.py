"""Run `vcbridge serve` as a real process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.process_stop import stop_process

# Ports `free_port` handed out in this process. The kernel may offer a closed probe's
# port again at once, and services started one after the other in one network namespace
# (Janus's HTTP port, baresip rooms' SIP ports) would then collide: "Address already in
# use" (seen once in `bench/sip.py`).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on loopback now, and never one this process handed out before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def service_env(**extra: str) -> dict[str, str]:
    """The environment of a test service: cheap password hashes, quick leadership polls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
    env.update(VCBRIDGE_PASSWORD_TIME_COST="1", VCBRIDGE_PASSWORD_MEMORY_KIB="64",
               VCBRIDGE_ADMIN_PASSWORD="admin-password-e2e", VCBRIDGE_LEADER_POLL_SECONDS="1")
    env.update(extra)
    return env


class Service:
    """One `vcbridge serve` process on a free port (of loopback, or of `host`).

    `command`: another command that serves, e.g. `("bridge-node",)`, or `("serve",
    "--roles", "api,scheduler")`; `--host`, `--port` and `--data-dir` are added."""

    def __init__(self, data_dir: Path, env: dict[str, str], host: str = "127.0.0.1",
                 command: Sequence[str] = ("serve",)) -> None:
        self.port = free_port()
        self.base = f"http://{host}:{self.port}"
        self.log = data_dir / f"{command[0]}-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vcbridge.cli", *command, "--host", host,
                 "--port", str(self.port), "--data-dir", str(data_dir)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        self.token = ""

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()}")
            try:
                status, body = self.request("GET", "/healthz")
                if status == 200:
                    return dict(body)
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service not healthy: {self.log.read_text()}")

    def login(self) -> None:
        status, body = self.request("POST", "/api/v1/auth/login",
                                    {"username": "admin", "password": "admin-password-e2e"})
        assert status == 200, body
        self.token = body["token"]

    def add_user(self, username: str, role: str, password: str, endpoint: str | None = None,
                 **fields: str) -> None:
        """Create an account through the API (as the admin: `login()` first)."""
        body: dict[str, Any] = {"username": username, "password": password, "role": role,
                                **fields}
        if endpoint:
            body["endpoint"] = endpoint
        status, answer = self.request("POST", "/api/v1/users", body)
        assert status == 201, answer

    def signal(self, number: int) -> None:
        """Send the process a signal (SIGSTOP freezes it, SIGCONT resumes it, SIGUSR1
        drains a bridge node)."""
        self.process.send_signal(number)

    def kill(self) -> None:
        """kill -9: no cleanup at all."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
