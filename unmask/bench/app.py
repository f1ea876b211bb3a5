"""``python -m unmask.bench app``: the Gradio app end to end through its API, alone and under load.

Starts ``python app.py`` on 127.0.0.1 in a child process, then:

1. latency: ``--requests`` sequential ``/unmask`` calls on a teaching example (p50 / p95, milliseconds) by
   three clients, so that the server's share and the client's share can be told apart:

   - ``gradio_client`` with its defaults;
   - ``gradio_client`` with ``ssl_verify=False``. gradio_client opens a new ``httpx`` client for each HTTP
     request (an upload, the queue join, one download per output file), and httpx builds a TLS context for
     each one even for ``http://`` URLs (encode/httpx#2298); the bench prints what that costs here.
     Skipping verification changes nothing else on plain HTTP; never do it against ``https://``;
   - plain HTTP through Gradio's REST protocol (``/gradio_api/upload``, ``/gradio_api/call/unmask``, the
     result stream, the downloads) on one keep-alive connection, with the time of each phase and the
     pipeline's own time inside the server (``timings_ms.total`` of the details).
2. load: ``--clients`` gradio_client users (defaults) calling it in a loop for ``--seconds`` seconds
   (answered, errors, throughput), with the server's resident memory before and after (the leak check).

Prints the load average too: the numbers mean little on a machine that other jobs share.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from unmask.measure import time_samples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "demo" / "examples" / "teaching_kn95.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def rest_unmask(http, path: str | os.PathLike, *, model: str = "teaching", aligned: bool = True
                ) -> tuple[dict[str, float], list]:
    """One ``/unmask`` call through Gradio's REST protocol on ``http`` (an ``httpx.Client`` whose
    ``base_url`` is the app): upload, call, result stream, downloads.

    Returns ``(milliseconds per phase, the output list)``; the output list holds the two image file
    values and the details JSON string, as ``gradio_client`` would return them. Raises ``RuntimeError``
    with the server's message when the call is refused (HTTP 422 from the validator) or fails.
    """
    t0 = time.perf_counter()
    name = Path(path).name
    with open(path, "rb") as handle:
        upload = http.post("gradio_api/upload", files={"files": (name, handle)})
    upload.raise_for_status()
    t1 = time.perf_counter()
    file_value = {"path": upload.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": name}
    call = http.post("gradio_api/call/unmask",
                     json={"data": [file_value, None, "auto", 0, 0, model, aligned, False]})
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


def httpx_client_ms(repeat: int = 10) -> float:
    """Milliseconds to construct (and close) one default ``httpx.Client`` here: its TLS context."""
    import httpx

    t0 = time.perf_counter()
    for _ in range(repeat):
        httpx.Client().close()
    return 1000.0 * (time.perf_counter() - t0) / repeat


def summary(samples: list[float]) -> str:
    return (f"p50 {statistics.median(samples):5.0f} ms   p95 {percentile(samples, 95):5.0f} ms   "
            f"min {min(samples):5.0f} ms   max {max(samples):5.0f} ms")


def start_server(port: int, timeout: float = 180.0) -> subprocess.Popen:
    """``python app.py`` on ``port``; returns once it answers."""
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer on port {port} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m unmask.bench app", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=50, help="sequential requests for p50 / p95")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--example", default=str(EXAMPLE), help="aligned teaching face to send")
    args = p.parse_args(argv)

    from gradio_client import Client, handle_file

    port = _free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    try:
        import httpx

        def call(c: Client) -> None:
            c.predict(handle_file(args.example), None, "auto", 0, 0, "teaching", True, False, api_name="/unmask")

        def timed(fn, n: int) -> list[float]:  # 3 warm-up calls: model load, first allocations, connections
            return time_samples(fn, warmup=3, repeat=n)

        print(f"\n== app: /unmask on {Path(args.example).name}, one client at a time, {args.requests} requests "
              f"each ==  (cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.2f})")
        client = Client(url, verbose=False)
        print(f"{'gradio_client (defaults)':<42}{summary(timed(lambda: call(client), args.requests))}")
        plain = Client(url, verbose=False, ssl_verify=False)
        print(f"{'gradio_client, ssl_verify=False':<42}{summary(timed(lambda: call(plain), args.requests))}")
        phases: dict[str, list[float]] = {}
        inside: list[float] = []
        with httpx.Client(base_url=url, timeout=120.0) as http:
            def rest() -> None:
                ms, output = rest_unmask(http, args.example)
                for key, value in ms.items():
                    phases.setdefault(key, []).append(value)
                inside.append(json.loads(output[2])["timings_ms"]["total"])

            rest_samples = timed(rest, args.requests)
        keep = slice(3, None)  # drop the warm-up calls
        print(f"{'HTTP /gradio_api/call/unmask, keep-alive':<42}{summary(rest_samples)}")
        print("  its phases (p50): " + "   ".join(f"{k} {statistics.median(v[keep]):.1f} ms"
                                             for k, v in phases.items() if k != "total")
              + f";  the pipeline inside the server {statistics.median(inside[keep]):.1f} ms")
        print(f"  one httpx.Client() here: {httpx_client_ms():.1f} ms; gradio_client opens one for the upload, "
              f"one for the queue join and one per output file (4 per /unmask call)")
        print(f"  load average {os.getloadavg()[0]:.2f} at the end")

        rss_before = rss_mib(server.pid)
        answered = [0] * args.clients
        errors: list[str] = []
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def worker(i: int) -> None:
            c = Client(url, verbose=False)
            while time.monotonic() < stop:
                try:
                    call(c)
                    answered[i] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                    with lock:
                        errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        timeline = [(0.0, rss_before)]  # (seconds, MiB): a leak climbs, warm-up levels off
        step = max(1.0, args.seconds / 6)
        while any(t.is_alive() for t in threads):
            time.sleep(0.25)
            if time.perf_counter() - t0 >= timeline[-1][0] + step:
                timeline.append((time.perf_counter() - t0, rss_mib(server.pid)))
        wall = time.perf_counter() - t0
        rss_after = rss_mib(server.pid)
        load1 = os.getloadavg()[0]
        print(f"\n== app: {args.clients} clients × {args.seconds:.0f} s ==  (load average {load1:.2f})")
        print(f"answered {sum(answered)}   errors {len(errors)}   throughput {sum(answered) / wall:.1f} req/s")
        print(f"server RSS {rss_before:.0f} MiB → {rss_after:.0f} MiB "
              f"({100 * (rss_after - rss_before) / rss_before:+.1f} %)")
        print("server RSS over time: " + "   ".join(f"{t:.0f} s {m:.0f}" for t, m in timeline) + " MiB")
        for message in sorted(set(errors))[:5]:
            print(f"  error: {message}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
