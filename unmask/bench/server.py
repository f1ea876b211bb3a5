"""The app in a child process for the benchmarks: start ``python app.py`` on a loopback port, call ``/unmask``
over Gradio's REST protocol, percentiles. Shared by :mod:`unmask.bench.app` and :mod:`unmask.bench.soak`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def rest_unmask(http, path: str | os.PathLike, *, model: str = "teaching", aligned: bool = True,
                session_hash: str | None = None) -> tuple[dict[str, float], list]:
    """One ``/unmask`` call through Gradio's REST protocol on ``http`` (an ``httpx.Client`` whose
    ``base_url`` is the app): upload, call, result stream, downloads.

    Returns ``(milliseconds per phase, the output list)``; the output list holds the two image file
    values and the details JSON string, as ``gradio_client`` would return them. ``session_hash``: the caller's
    session, as a browser tab or a ``gradio_client.Client`` keeps one (``None``: every call is a new session).
    Raises ``RuntimeError`` with the server's message when the call is refused (HTTP 422 from the validator) or
    fails.
    """
    t0 = time.perf_counter()
    name = Path(path).name
    with open(path, "rb") as handle:
        upload = http.post("gradio_api/upload", files={"files": (name, handle)})
    upload.raise_for_status()
    t1 = time.perf_counter()
    file_value = {"path": upload.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": name}
    call = http.post("gradio_api/call/unmask",
                     json={"data": [file_value, None, "auto", 0, 0, model, aligned, False],
                           **({"session_hash": session_hash} if session_hash else {})})
    if call.status_code == 422:
        raise RuntimeError(" ".join(d.get("message", "") for d in call.json()["detail"] if not d["is_valid"]))
    call.raise_for_status()
    t2 = time.perf_counter()
    event, output = None, None
    with http.stream("GET", f"gradio_api/call/unmask/{call.json()['event_id']}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                output = json.loads(line.removeprefix("data:"))
                break
    if event != "complete" or output is None:
        raise RuntimeError(f"/gradio_api/call/unmask ended with {event!r}: {output}")
    t3 = time.perf_counter()
    for value in output[:2]:
        http.get(value["url"]).raise_for_status()
    t4 = time.perf_counter()
    phases = {"upload": t1 - t0, "call": t2 - t1, "result": t3 - t2, "download": t4 - t3, "total": t4 - t0}
    return {k: 1000.0 * v for k, v in phases.items()}, output


def start_server(port: int, timeout: float = 180.0, *, env: dict[str, str] | None = None,
                 probe: bool = False) -> subprocess.Popen:
    """``python app.py`` on ``port`` (under :mod:`unmask.bench.probe` when ``probe``; ``env`` added to the
    environment); returns once it answers."""
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    command = [sys.executable, *(["-m", "unmask.bench.probe"] if probe else []), str(ROOT / "app.py")]
    log = tempfile.TemporaryFile()  # a file, not a pipe: a long run's warnings must never block the server
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"app.py exited with {proc.returncode}: {log.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer on port {port} within {timeout:.0f} s")
