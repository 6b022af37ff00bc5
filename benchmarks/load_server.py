"""The app server for the load benchmark: `streamlit run app/main.py` started, watched and
stopped, and what /proc says of its CPU, memory and the machine's load (bench_load.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_gib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, GiB."""
    cur = peak = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 2**20
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 2**20
    return cur, peak


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat, not idle or iowait)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def pct(values, q) -> float | None:
    return (
        round(float(np.percentile(np.asarray(values, np.float64), q)), 1) if len(values) else None
    )


class Meter:
    """CPU used by the server, by this process and by everything else over an interval."""

    def __init__(self, pid: int):
        self.pid = pid
        self.t, self.server, self.me, self.busy = (
            time.perf_counter(),
            proc_cpu_s(pid),
            self_cpu_s(),
            machine_busy_s(),
        )

    def read(self) -> dict:
        wall = time.perf_counter() - self.t
        server = proc_cpu_s(self.pid) - self.server
        me = self_cpu_s() - self.me
        busy = machine_busy_s() - self.busy
        return {
            "wall_s": round(wall, 2),
            "server_cpu_s": round(server, 2),
            "server_cores": round(server / wall, 2),
            "load_generator_cores": round(me / wall, 3),
            "other_processes_cores": round(max(busy - server - me, 0.0) / wall, 2),
        }


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `streamlit run` with cProfile (CPU time of each thread) in every thread; SIGUSR2 clears the
# profiles, SIGUSR1 writes them merged to $GAIR_PROFILE_OUT. py-spy cannot attach to a process
# on the development VM ("Failed to find python version from target process"), hence this.
PROFILED_STREAMLIT = """
import cProfile, os, pstats, signal, sys, threading, time
profs, lock = [], threading.Lock()
def boot(frame, event, arg):
    sys.setprofile(None)
    p = cProfile.Profile(time.thread_time)
    with lock:
        profs.append(p)
    p.enable()
threading.setprofile(boot)
main = cProfile.Profile(time.thread_time)
profs.append(main)
def dump(*_):
    stats = None
    with lock:
        for p in profs:
            p.create_stats()
            if p.stats:
                stats = pstats.Stats(p) if stats is None else stats.add(p)
    stats.dump_stats(os.environ["GAIR_PROFILE_OUT"])
def clear(*_):
    with lock:
        for p in profs:
            p.clear()
signal.signal(signal.SIGUSR1, dump)
signal.signal(signal.SIGUSR2, clear)
main.enable()
from streamlit.web.cli import main as cli
sys.argv = ["streamlit"] + sys.argv[1:]
sys.exit(cli())
"""


def start_server(
    index: str, port: int, log: Path, extra=(), profile: Path | None = None
) -> subprocess.Popen:
    """`streamlit run app/main.py` as `make serve-app` serves it (one BLAS/OpenMP thread);
    `extra`: more `streamlit run` options (e.g. `--runner.postScriptGC=false`); `profile`:
    run it under PROFILED_STREAMLIT, writing the stats there on SIGUSR1."""
    env = dict(os.environ, GAIR_INDEX=index, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    for name in ("GAIR_WORLD", "GAIR_CHECKPOINT"):
        env.pop(name, None)
    launcher = [sys.executable, "-m", "streamlit"]
    if profile is not None:
        env["GAIR_PROFILE_OUT"] = str(profile)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        launcher = [sys.executable, "-c", PROFILED_STREAMLIT]
    cmd = [
        *launcher, "run", "app/main.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.enableStaticServing", "true", "--browser.gatherUsageStats", "false", *extra,
    ]  # fmt: skip
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_server_idle(pid: int, below: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until the server's own background work (model load, index hashing, overlay lookup,
    basemap tiles) is done: its CPU over 2 s below `below` cores. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        c = proc_cpu_s(pid)
        time.sleep(2.0)
        if (proc_cpu_s(pid) - c) / 2.0 < below:
            break
    return round(time.perf_counter() - t0, 1)


def wait_quiet(threshold: float, timeout: float) -> list[float]:
    """Wait (at most `timeout` s) for the 1-minute load average to drop below `threshold`."""
    deadline = time.time() + timeout
    while os.getloadavg()[0] >= threshold and time.time() < deadline:
        time.sleep(5)
    return loadavg()
