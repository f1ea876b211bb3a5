"""The app under sustained load: ``python -m unmask.bench app --soak SECONDS`` (see :mod:`unmask.bench.app`).

Starts ``python app.py`` under :mod:`unmask.bench.probe` on 127.0.0.1 with a private temporary folder
(``TMPDIR``, so that Gradio's cache and the app's output files land there and nothing else does), runs
``clients`` users sending the teaching example through ``/unmask`` in a loop, and every ``interval`` seconds
samples the server's resident memory, open files, threads, CPU seconds, the temporary folder's size and
Python object counts by type. After the warm-up it reports growth per 1,000 requests: a leak grows with the
requests, warm-up levels off.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Folders of library code that the stack summary leaves out (torch's layers say nothing about the app).
SKIP_FOLDERS = frozenset({"torch", "modules", "nn", "utils", "autograd", "functional"})
#: Types whose count growth per 1,000 requests is printed (the largest growers first).
TOP_TYPES = 10


@dataclass(frozen=True)
class Sample:
    """One reading of the server, ``t`` seconds into the soak, after ``answered`` answers."""

    t: float
    answered: int
    errors: int
    rss_mib: float
    open_files: int
    threads: int
    cpu_s: float
    tmp_mib: float
    tmp_files: int
    objects: int | None
    gc_s: float | None = None
    types: dict[str, int] = field(default_factory=dict)
    load1: float = 0.0


@dataclass(frozen=True)
class SoakResult:
    """What a soak measured; ``samples[warm:]`` are the ones after the warm-up."""

    samples: list[Sample]
    warm: int
    latencies_ms: list[float]
    errors: list[str]
    seconds: float
    alive: bool

    @property
    def answered(self) -> int:
        return self.samples[-1].answered

    def per_1000(self, key: str) -> float:
        """Least-squares slope of ``key`` against answered requests after the warm-up, per 1,000 requests."""
        xs = [s.answered for s in self.samples[self.warm:]]
        ys = [float(getattr(s, key)) for s in self.samples[self.warm:]]
        return 1000.0 * slope(xs, ys)

    def growth_percent(self, key: str = "rss_mib") -> float:
        """Growth of ``key`` from the end of the warm-up to the end, in percent of the warm-up value (from the
        least-squares line through the samples after the warm-up, so that one noisy sample does not decide)."""
        after = self.samples[self.warm:]
        xs = [s.answered for s in after]
        ys = [float(getattr(s, key)) for s in after]
        b = slope(xs, ys)
        a = statistics.fmean(ys) - b * statistics.fmean(xs)
        start = a + b * xs[0]
        return 100.0 * b * (xs[-1] - xs[0]) / start if start else float("nan")


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` on ``xs`` (0 with fewer than two distinct ``xs``)."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def proc_stats(pid: int) -> dict[str, float]:
    """Resident MiB, open files, threads and CPU seconds (user + system) of process ``pid`` (Linux ``/proc``)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024.0, "threads": int(status["Threads"]),
            "open_files": len(os.listdir(f"/proc/{pid}/fd")),
            "cpu_s": (int(fields[11]) + int(fields[12])) / ticks}  # utime, stime: fields 14 and 15 of stat


def folder_size(root: Path) -> tuple[float, int]:
    """``(MiB, files)`` under ``root`` (files removed while walking are skipped)."""
    total, files = 0, 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
                files += 1
            except FileNotFoundError:
                pass
    return total / 2**20, files


def last_probe_sample(probe_dir: Path) -> dict | None:
    path = probe_dir / "samples.jsonl"
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    return json.loads(lines[-1]) if lines else None


def make_caller(url: str, example: str, client: str):
    """A function that sends ``example`` through ``/unmask`` once and raises on any failure, for one user.

    ``client``: ``"gradio"`` (gradio_client with its defaults), ``"gradio-plain"`` (gradio_client with
    ``ssl_verify=False``: on a loopback ``http://`` URL it only skips building a TLS context per request, see
    :mod:`unmask.bench.app`), ``"http"`` (Gradio's REST protocol on one keep-alive connection, one session per
    user like a browser tab) or ``"http-anonymous"`` (the same without a session hash: every call is a new
    session to the server, as for ``curl`` or an MCP client).
    """
    if client in ("http", "http-anonymous"):
        import httpx

        from unmask.bench.server import rest_unmask

        http = httpx.Client(base_url=url, timeout=120.0)
        session = uuid.uuid4().hex if client == "http" else None
        return lambda: rest_unmask(http, example, session_hash=session)
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False, ssl_verify=client != "gradio")
    return lambda: c.predict(handle_file(example), None, "auto", 0, 0, "teaching", True, False, api_name="/unmask")


def soak(url: str, pid: int, tmp_root: Path, probe_dir: Path | None, *, seconds: float, clients: int,
         interval: float, example: str, client: str = "gradio-plain", warmup: float | None = None,
         requests: int | None = None, alive=lambda: True, echo=print) -> SoakResult:
    """Load the server at ``url`` (process ``pid``, temporary folder ``tmp_root``) for ``seconds`` with
    ``clients`` users, sampling every ``interval`` seconds; the first ``warmup`` seconds (default a third) are
    the warm-up. With ``requests``, the soak ends after that many answers (or ``seconds``, whichever comes
    first) and the warm-up is the first half of them. ``echo`` gets one line per sample as it is taken."""
    warmup = seconds / 3 if warmup is None else warmup
    times: list[tuple[float, float]] = []  # (end time, latency ms) of every answer
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    stop = t0 + seconds

    def worker() -> None:
        try:
            call = make_caller(url, example, client)
        except Exception as exc:  # noqa: BLE001 - a user that cannot connect is an error like any other
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            return
        while time.monotonic() < stop and (requests is None or len(times) < requests):
            start = time.monotonic()
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
                continue
            end = time.monotonic()
            with lock:
                times.append((end - t0, 1000.0 * (end - start)))

    def read(t: float) -> Sample:
        stats = proc_stats(pid)
        mib, files = folder_size(tmp_root)
        probe = last_probe_sample(probe_dir) if probe_dir is not None else None
        with lock:
            answered, failed = len(times), len(errors)
        return Sample(t=t, answered=answered, errors=failed, tmp_mib=mib, tmp_files=files,
                      objects=probe["objects"] if probe else None, types=probe["types"] if probe else {},
                      gc_s=probe.get("gc_s") if probe else None,
                      load1=os.getloadavg()[0], **stats)

    echo(f"{'s':>6} {'answered':>8} {'errors':>6} {'req/s':>6} {'p50 ms':>7} {'RSS MiB':>8} {'files':>5} "
         f"{'threads':>7} {'cpu ms/req':>10} {'gc ms/req':>9} {'tmp MiB':>8} {'tmp files':>9} {'objects':>8} "
         f"{'load':>5}")
    samples = [read(0.0)]
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(interval, max(0.05, stop + 0.05 - time.monotonic())) if time.monotonic() < stop else 0.25)
        now = time.monotonic() - t0
        if now - samples[-1].t < interval and any(t.is_alive() for t in threads):
            continue
        if not alive():
            errors.append("the server exited")
            break
        s, prev = read(now), samples[-1]
        samples.append(s)
        with lock:
            window = [ms for end, ms in times if end > prev.t]
        done = s.answered - prev.answered
        gc_ms = (f"{1000 * (s.gc_s - prev.gc_s) / max(1, done):9.1f}" if s.gc_s is not None and prev.gc_s is not None
                 else f"{'-':>9}")
        echo(f"{s.t:6.0f} {s.answered:8d} {s.errors:6d} {done / max(1e-9, s.t - prev.t):6.1f} "
             f"{statistics.median(window) if window else float('nan'):7.0f} {s.rss_mib:8.1f} {s.open_files:5d} "
             f"{s.threads:7d} {1000 * (s.cpu_s - prev.cpu_s) / max(1, done):10.1f} {gc_ms} {s.tmp_mib:8.1f} "
             f"{s.tmp_files:9d} {s.objects if s.objects is not None else '-':>8} {s.load1:5.2f}")
    if requests is None:
        warm = next((i for i, s in enumerate(samples) if s.t >= warmup), len(samples) - 1)
    else:
        warm = next((i for i, s in enumerate(samples) if s.answered >= requests // 2), len(samples) - 1)
        warmup = samples[warm].t
    warm = min(warm, max(0, len(samples) - 2))  # at least two samples after the warm-up
    return SoakResult(samples=samples, warm=warm, latencies_ms=[ms for end, ms in times if end >= warmup],
                      errors=errors, seconds=time.monotonic() - t0, alive=alive())


def report(result: SoakResult, echo=print) -> None:
    """Print the soak's summary: errors, throughput, latency and growth per 1,000 requests after the warm-up."""
    from unmask.bench.server import percentile

    s0, s1 = result.samples[result.warm], result.samples[-1]
    n = s1.answered - s0.answered
    span = max(1e-9, s1.t - s0.t)
    lat = result.latencies_ms or [float("nan")]
    echo(f"\nafter the warm-up ({s0.t:.0f} s → {s1.t:.0f} s): {n} answers, {s1.errors} errors in all, "
         f"{n / span:.1f} req/s, p50 {statistics.median(lat):.0f} ms, p95 {percentile(lat, 95):.0f} ms "
         f"(p95/p50 {percentile(lat, 95) / statistics.median(lat):.2f}), server CPU "
         f"{1000 * (s1.cpu_s - s0.cpu_s) / max(1, n):.1f} ms per request, load average {s1.load1:.2f}; "
         f"server {'alive' if result.alive else 'DEAD'}")
    echo(f"RSS {s0.rss_mib:.1f} → {s1.rss_mib:.1f} MiB: {result.growth_percent():+.2f} % "
         f"(least-squares line), {1024 * result.per_1000('rss_mib'):+.0f} KiB per 1,000 requests")
    tmp = [s.tmp_mib for s in result.samples]
    echo(f"temporary folder: {s1.tmp_mib:.1f} MiB, {s1.tmp_files} files at the end (largest {max(tmp):.1f} MiB); "
         f"{result.per_1000('tmp_mib'):+.2f} MiB and {result.per_1000('tmp_files'):+.0f} files per 1,000 requests")
    echo(f"open files {s0.open_files} → {s1.open_files}, threads {s0.threads} → {s1.threads}"
         + (f", gc objects {s0.objects} → {s1.objects} ({result.per_1000('objects'):+.0f} per 1,000 requests)"
            if s0.objects is not None and s1.objects is not None else ""))
    if s0.gc_s is not None and s1.gc_s is not None:
        echo(f"garbage collector: {1000 * (s1.gc_s - s0.gc_s) / max(1, n):.1f} ms per request")
    if s0.types and s1.types:
        grown = sorted(((s1.types.get(k, 0) - s0.types.get(k, 0), k) for k in set(s0.types) | set(s1.types)),
                       reverse=True)[:TOP_TYPES]
        echo("object types that grew most: " + ", ".join(f"{k} {1000 * d / max(1, n):+.0f}" for d, k in grown if d > 0)
             + " (per 1,000 requests)")
    for message in sorted(set(result.errors))[:5]:
        echo(f"  error: {message}")


def tracemalloc_diff(probe_dir: Path, first: int, last: int, top: int = 15, echo=print) -> None:
    """Print the ``top`` source lines whose traced memory grew most between two probe snapshots."""
    import tracemalloc

    a = tracemalloc.Snapshot.load(str(probe_dir / f"snapshot-{first}.tracemalloc"))
    b = tracemalloc.Snapshot.load(str(probe_dir / f"snapshot-{last}.tracemalloc"))
    echo(f"\ntracemalloc: snapshot {first} → {last}, the {top} lines that grew most")
    for stat in b.compare_to(a, "lineno")[:top]:
        echo(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {stat.traceback}")


def print_stacks(data: dict, n: int, top: int = 70, echo=print) -> None:
    """Print the probe's stack samples: the functions busy threads spent most samples in (inclusive)."""
    per = data["period"] * 1000.0 / max(1, n)  # milliseconds of one busy thread per request, per sample
    echo(f"\nstack samples: {data['samples']} every {1000 * data['period']:.0f} ms; busy-thread ms per request "
         "(inclusive / at the top of the stack)")
    exclusive = dict((k, v) for k, v in data["exclusive"])
    for key, count in [kv for kv in data["inclusive"] if kv[0].split("/")[0] not in SKIP_FOLDERS][:top]:
        echo(f"  {count * per:8.1f} {exclusive.get(key, 0) * per:8.1f}  {key}")


@dataclass(frozen=True)
class SoakServer:
    """A running ``python app.py`` under the probe: its URL, process, temporary folder and probe folder."""

    url: str
    process: object  # subprocess.Popen
    tmp_root: Path
    probe_dir: Path

    def alive(self) -> bool:
        return self.process.poll() is None


@contextlib.contextmanager
def soak_server(interval: float, *, tracemalloc_frames: int = 0, profile: float = 0.0) -> Iterator[SoakServer]:
    """Start ``python app.py`` on a free loopback port under :mod:`unmask.bench.probe` with a private ``TMPDIR``;
    stop it and remove its folders on exit."""
    from unmask.bench.server import free_port, start_server

    tmp_root = Path(tempfile.mkdtemp(prefix="unmask-soak-"))
    probe_dir = tmp_root.with_name(tmp_root.name + "-probe")
    env = {"TMPDIR": str(tmp_root), "UNMASK_PROBE_OUT": str(probe_dir), "UNMASK_PROBE_INTERVAL": str(interval)}
    if tracemalloc_frames:
        env["UNMASK_PROBE_TRACEMALLOC"] = str(tracemalloc_frames)
    if profile:
        env["UNMASK_PROBE_STACKS"] = str(profile)
    port = free_port()
    try:
        server = start_server(port, env=env, probe=True)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    try:
        yield SoakServer(f"http://127.0.0.1:{port}/", server, tmp_root, probe_dir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a server that will not stop is killed
            server.kill()
        shutil.rmtree(tmp_root, ignore_errors=True)
        shutil.rmtree(probe_dir, ignore_errors=True)


def run(args) -> SoakResult:
    """``python -m unmask.bench app --soak SECONDS``: start the server, soak it, print the report."""
    with soak_server(args.interval, tracemalloc_frames=args.tracemalloc, profile=args.profile) as server:
        print(f"\n== app soak: {args.clients} clients ({args.client}) × {args.soak:.0f} s on "
              f"{Path(args.example).name}, sampled every {args.interval:.0f} s ==  (cpus={os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.2f}; server pid {server.process.pid}, temporary folder "
              f"{server.tmp_root}; MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '-')}, "
              f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '-')})", flush=True)
        result = soak(server.url, server.process.pid, server.tmp_root, server.probe_dir, seconds=args.soak,
                      clients=args.clients, interval=args.interval, example=args.example, client=args.client,
                      requests=args.soak_requests, alive=server.alive, echo=lambda line: print(line, flush=True))
        report(result)
        probe_dir = server.probe_dir
        if args.tracemalloc:
            snaps = sorted(int(p.stem.split("-")[1]) for p in probe_dir.glob("snapshot-*.tracemalloc"))
            if len(snaps) >= 2:
                first = next((k for k in snaps if (k + 1) * args.interval >= result.samples[result.warm].t), snaps[0])
                tracemalloc_diff(probe_dir, first, snaps[-1])
        if args.profile and (probe_dir / "stacks.json").is_file():
            print_stacks(json.loads((probe_dir / "stacks.json").read_text()), n=result.answered)
        return result
