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

Also printed: the first and the second request right after the server starts (a photo with detection: what a
first visitor waits against the next), and the server's own CPU milliseconds per request in every phase.

``--breakdown`` prints instead where a request's CPU goes: the handler's stages (decode, detection and alignment,
encoder, generator, identity score, paste-back, provenance / XMP, image encoding: ``python -m demo.profile`` in a
child process) and, from the server's CPU per request over plain HTTP, Gradio's own work beyond the handler.

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
PHOTO = ROOT / "demo" / "examples" / "photo_astronaut.jpg"


def _stop(server: subprocess.Popen) -> None:
    """End the app server: terminate, then kill if it has not exited within 20 s."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) that process ``pid`` has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    p.add_argument("--breakdown", action="store_true",
                   help="print the CPU per request by stage (the handler's stages and Gradio's own work) instead")
    args = p.parse_args(argv)
    if args.breakdown:
        breakdown(args.requests)
        return
    if args.soak:
        from unmask.bench.soak import run

        run(args)
        return

    from gradio_client import Client, handle_file

    port = free_port()
    t_start = time.perf_counter()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    try:
        import httpx

        print(f"\n== app: started in {time.perf_counter() - t_start:.1f} s; the first requests after start ==  "
              f"(load average {os.getloadavg()[0]:.2f})")
        with httpx.Client(base_url=url, timeout=300.0) as http:
            firsts = []
            for _ in range(3):
                t0 = time.perf_counter()
                rest_unmask(http, PHOTO, aligned=False)
                firsts.append(1000.0 * (time.perf_counter() - t0))
        print(f"{PHOTO.name} over plain HTTP: first {firsts[0]:.0f} ms, second {firsts[1]:.0f} ms, third "
              f"{firsts[2]:.0f} ms (first / second {firsts[0] / firsts[1]:.2f}×)")

        def call(c: Client) -> None:
            c.predict(handle_file(args.example), None, "auto", 0, 0, "teaching", True, False, api_name="/unmask")

        def timed(fn, n: int) -> list[float]:  # 3 warm-up calls: model load, first allocations, connections
            return time_samples(fn, warmup=3, repeat=n)

        print(f"\n== app: /unmask on {Path(args.example).name}, one client at a time, {args.requests} requests "
              f"each ==  (cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.2f})")
        client = Client(url, verbose=False)
        cpu0 = cpu_seconds(server.pid)
        print(f"{'gradio_client (defaults)':<42}{summary(timed(lambda: call(client), args.requests))}"
              f"   server CPU {1000 * (cpu_seconds(server.pid) - cpu0) / (args.requests + 3):.0f} ms/request")
        plain = Client(url, verbose=False, ssl_verify=False)
        cpu0 = cpu_seconds(server.pid)
        print(f"{'gradio_client, ssl_verify=False':<42}{summary(timed(lambda: call(plain), args.requests))}"
              f"   server CPU {1000 * (cpu_seconds(server.pid) - cpu0) / (args.requests + 3):.0f} ms/request")
        phases: dict[str, list[float]] = {}
        inside: list[float] = []
        with httpx.Client(base_url=url, timeout=120.0) as http:
            def rest() -> None:
                ms, output = rest_unmask(http, args.example)
                for key, value in ms.items():
                    phases.setdefault(key, []).append(value)
                inside.append(json.loads(output[2])["timings_ms"]["total"])

            cpu0 = cpu_seconds(server.pid)
            rest_samples = timed(rest, args.requests)
            rest_cpu = 1000 * (cpu_seconds(server.pid) - cpu0) / (args.requests + 3)
        keep = slice(3, None)  # drop the warm-up calls
        print(f"{'HTTP /gradio_api/call/unmask, keep-alive':<42}{summary(rest_samples)}   server CPU {rest_cpu:.0f} "
              "ms/request")
        print("  its phases (p50): " + "   ".join(f"{k} {statistics.median(v[keep]):.1f} ms"
                                             for k, v in phases.items() if k != "total")
              + f";  the pipeline inside the server {statistics.median(inside[keep]):.1f} ms")
        print(f"  one httpx.Client() here: {httpx_client_ms():.1f} ms; gradio_client opens one for the upload, "
              f"one for the queue join and one per output file (4 per /unmask call)")
        print(f"  load average {os.getloadavg()[0]:.2f} at the end")

        rss_before = rss_mib(server.pid)
        cpu_before = cpu_seconds(server.pid)
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
        cpu_used = cpu_seconds(server.pid) - cpu_before
        rss_after = rss_mib(server.pid)
        load1 = os.getloadavg()[0]
        print(f"\n== app: {args.clients} clients × {args.seconds:.0f} s ==  (load average {load1:.2f})")
        print(f"answered {sum(answered)}   errors {len(errors)}   throughput {sum(answered) / wall:.1f} req/s   "
              f"server CPU {1000 * cpu_used / max(1, sum(answered)):.0f} ms/request "
              f"({100 * cpu_used / wall / (os.cpu_count() or 1):.0f} % of the machine's cores)")
        print(f"server RSS {rss_before:.0f} MiB → {rss_after:.0f} MiB "
              f"({100 * (rss_after - rss_before) / rss_before:+.1f} %)")
        print("server RSS over time: " + "   ".join(f"{t:.0f} s {m:.0f}" for t, m in timeline) + " MiB")
        for message in sorted(set(errors))[:5]:
            print(f"  error: {message}")
    finally:
        _stop(server)


def breakdown(requests: int) -> None:
    """``--breakdown``: CPU milliseconds per request by stage; Gradio's share from the server's CPU over HTTP."""
    import sys

    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-m", "demo.profile", "--json", "--requests", str(requests)], cwd=ROOT,
                           env=env, capture_output=True, text=True, check=True)
    stages = json.loads(child.stdout.strip().splitlines()[-1])
    port = free_port()
    server = start_server(port)
    server_cpu: dict[str, float] = {}
    session_cpu = float("nan")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/", timeout=300.0) as http:
            def server_ms(path: Path, aligned: bool, session: str | None = None) -> float:
                for _ in range(3):
                    rest_unmask(http, path, aligned=aligned, session_hash=session)
                cpu0 = cpu_seconds(server.pid)
                for _ in range(requests):
                    rest_unmask(http, path, aligned=aligned, session_hash=session)
                return 1000.0 * (cpu_seconds(server.pid) - cpu0) / requests

            for kind in stages:
                if kind.startswith("API"):
                    server_cpu[kind] = server_ms(*((EXAMPLE, True) if "aligned" in kind else (PHOTO, False)))
            session_cpu = server_ms(EXAMPLE, True, session="breakdown")  # one session for all calls, as a tab
    finally:
        _stop(server)
    kinds = list(stages)
    print(f"\n== app: CPU milliseconds per request, by stage ({requests} requests each, one at a time, 1 torch "
          f"thread) ==  (cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.2f})")
    names = list(next(iter(stages.values())))
    width = max(len(k) for k in kinds) + 2
    print(f"{'stage':<34}" + "".join(f"{k:>{width}}" for k in kinds))
    for stage in names:
        label = "handler total" if stage == "total" else stage
        print(f"{label:<34}" + "".join(f"{stages[k][stage]:{width}.1f}" for k in kinds))
    gradio = [f"{server_cpu[k] - stages[k]['total']:{width}.1f}" if k in server_cpu else f"{'-':>{width}}"
              for k in kinds]
    print(f"{'Gradio and the server, beyond it':<34}" + "".join(gradio))
    print(f"{'server CPU per request (HTTP)':<34}"
          + "".join(f"{server_cpu[k]:{width}.1f}" if k in server_cpu else f"{'-':>{width}}" for k in kinds))
    print(f"  (each HTTP call above is a new Gradio session, as curl and MCP clients make them; with one session for "
          f"all calls, as a browser tab or gradio_client keeps, the server spent {session_cpu:.1f} ms per request on "
          f"{EXAMPLE.name})")


if __name__ == "__main__":
    main()
