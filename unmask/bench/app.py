"""``python -m unmask.bench app``: the Gradio app end to end through its API, alone and under load.

Starts ``python app.py`` on 127.0.0.1 in a child process, then with ``gradio_client``:

1. latency: ``--requests`` sequential ``/unmask`` calls on a teaching example (p50 / p95, milliseconds);
2. load: ``--clients`` clients calling it in a loop for ``--seconds`` seconds (answered, errors, throughput),
   with the server's resident memory before and after (its growth is the leak check).

Prints the load average too: the numbers mean little on a machine that other jobs share.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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
        client = Client(url, verbose=False)

        def call(c: Client) -> None:
            c.predict(handle_file(args.example), None, "auto", 0, 0, "teaching", True, False, api_name="/unmask")

        for _ in range(3):  # warm-up: model load, first allocations
            call(client)
        samples = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            call(client)
            samples.append((time.perf_counter() - t0) * 1000.0)
        load1 = os.getloadavg()[0]
        print(f"\n== app: /unmask on {Path(args.example).name}, one client, {args.requests} requests ==  "
              f"(cpus={os.cpu_count()}, load average {load1:.2f})")
        print(f"p50 {statistics.median(samples):.0f} ms   p95 {percentile(samples, 95):.0f} ms   "
              f"min {min(samples):.0f} ms   max {max(samples):.0f} ms")

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
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_after = rss_mib(server.pid)
        load1 = os.getloadavg()[0]
        print(f"\n== app: {args.clients} clients × {args.seconds:.0f} s ==  (load average {load1:.2f})")
        print(f"answered {sum(answered)}   errors {len(errors)}   throughput {sum(answered) / wall:.1f} req/s")
        print(f"server RSS {rss_before:.0f} MiB → {rss_after:.0f} MiB "
              f"({100 * (rss_after - rss_before) / rss_before:+.1f} %)")
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
