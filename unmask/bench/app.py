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

``--soak SECONDS`` runs a long load instead (:func:`soak`): ``--clients`` users for that long, the server's
resident memory, open files, threads, its temporary folder's size and Python object counts by type sampled
every ``--interval`` seconds, and growth per 1,000 requests after the warm-up (the first third).

Prints the load average too: the numbers mean little on a machine that other jobs share. The server's own CPU
seconds per request (``/proc``) do not depend on what else runs, so they are printed beside throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

from unmask.bench.server import ROOT, free_port, percentile, rest_unmask, start_server
from unmask.measure import time_samples

EXAMPLE = ROOT / "demo" / "examples" / "teaching_kn95.png"


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m unmask.bench app", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=50, help="sequential requests for p50 / p95")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--example", default=str(EXAMPLE), help="aligned teaching face to send")
    p.add_argument("--soak", type=float, metavar="SECONDS",
                   help="run a soak of this many seconds instead (memory, files, threads, /tmp, objects)")
    p.add_argument("--interval", type=float, default=10.0, help="soak: seconds between samples of the server")
    p.add_argument("--client", choices=("gradio", "gradio-plain", "http", "http-anonymous"), default="gradio-plain",
                   help="soak: each user's client (gradio-plain = gradio_client with ssl_verify=False; http: REST "
                        "with one session per user; http-anonymous: REST, every call a new session)")
    p.add_argument("--soak-requests", type=int, metavar="N",
                   help="soak: stop after N answers (the warm-up is then the first half)")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                   help="soak: trace Python allocations in the server and diff the snapshots (slow)")
    p.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                   help="soak: sample the server's Python stacks this often and print where requests spend time")
    args = p.parse_args(argv)
    if args.soak:
        from unmask.bench.soak import run

        run(args)
        return

    from gradio_client import Client, handle_file

    port = free_port()
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
