"""Helpers for tests that run the real `campaign-canvas` processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).parent / "campaign-canvas")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition", every: float = 0.1) -> Any:
    """The first truthy value of `predicate()`; an unreachable server counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except OSError:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def call(base: str, path: str, body: Any = None, key: str | None = None,
         method: str | None = None) -> tuple[int, Any]:
    """(status, JSON answer) of a request: `method` (GET, POST, PUT, PATCH, DELETE...), by
    default a POST when `body` is given and a GET otherwise. An empty answer is None."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(base + path, method=method or ("POST" if body is not None else "GET"),
                                     data=json.dumps(body).encode() if body is not None else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())


def post_signed(base: str, path: str, body: bytes, sign: Any) -> Any:
    """The JSON answer of a webhook POST that must succeed: `body` as is, with the headers
    `sign(body, unix time now)` gives (a provider's signature over exactly these bytes)."""
    headers = {"Content-Type": "application/json", **sign(body, int(time.time()))}
    request = urllib.request.Request(base + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return _json(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"POST {path}: {exc.code} {exc.read()[:2000]!r}") from None


def _json(raw: bytes) -> Any:
    return json.loads(raw) if raw.strip() else None


def api(base: str, path: str, body: Any = None, key: str | None = None, method: str | None = None) -> Any:
    """The JSON answer of a call that must succeed."""
    status, answer = call(base, path, body, key, method)
    assert status < 400, (method or ("POST" if body is not None else "GET"), path, status, answer)
    return answer


def answering(base: str) -> bool:
    """Whether a server listens at `base` (the public login page answers)."""
    try:
        with urllib.request.urlopen(base + "/login", timeout=5):
            return True
    except OSError:
        return False


def api_key(env: dict[str, str], role: str = "admin") -> str:
    """A new key made by the real `create-api-key` command (its last stdout line)."""
    made = subprocess.run([CLI, "create-api-key", f"{role} for a test", "--role", role], env=env,
                          capture_output=True, text=True, check=True)
    return made.stdout.strip().splitlines()[-1]


def stop(process: subprocess.Popen) -> str:
    """Terminate (then kill) a process started with stdout=PIPE, text=True; its output."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out or ""


def dispatcher(env: dict[str, str], *, output: bool = False) -> subprocess.Popen:
    """A real `campaign-canvas dispatcher` process polling every 0.2 s."""
    pipes: dict[str, Any] = ({"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True} if output
                             else {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL})
    return subprocess.Popen([CLI, "dispatcher", "--poll", "0.2"], env=env, **pipes)


def kill_dispatchers_mid_send(env: dict[str, str], progress: Any, pauses: tuple[float, ...]) -> None:
    """Start a dispatcher, wait until `progress()` (what the provider received so far) grows,
    which is this dispatcher sending, let it work `pause` seconds, SIGKILL it; once per pause."""
    import os
    import signal

    for pause in pauses:
        before = progress()
        process = dispatcher(env)
        wait_for(lambda b=before: progress() > b, timeout=30, what="the dispatcher to start sending")
        time.sleep(pause)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def dispatch_until(env: dict[str, str], done: Any, what: str) -> None:
    """Run a dispatcher until `done()`; fail on a traceback in its output."""
    process = dispatcher(env, output=True)
    try:
        wait_for(done, timeout=90, what=what)
    finally:
        output = stop(process)
    assert "Traceback" not in output, output
