"""A real Spark standalone cluster on 127.0.0.1 for the tests: a master and workers, each its
own JVM, started from PySpark's own classes (``bin/spark-class``) and stopped, all within
deadlines. Every process is in a session of its own, so that stopping one stops what it
started (a worker's executors and their Python workers) too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

START_DEADLINE = 120.0  # seconds for the master and every worker to be up and registered
STOP_DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def environment() -> dict[str, str]:
    """What the cluster's processes, and a driver that uses it, run with: this Python on
    the executors, everything on 127.0.0.1, Spark's home the installed PySpark's."""
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOCAL_HOSTNAME="127.0.0.1",
    )
    return env


@dataclass
class Cluster:
    master: str  # spark://127.0.0.1:PORT
    ui: int  # the master's web UI port (its /json/ says which workers are alive)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path = Path()

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
                state = json.loads(r.read())
        except (OSError, ValueError):
            return 0
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def executors(self) -> list[int]:
        """The pids of the executor JVMs the workers run now (a worker's executors are in
        its session)."""
        sessions = {p.pid for p in self.processes[1:]}
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            session = int(
                stat.rsplit(")", 1)[1].split()[3]
            )  # after the name: state, ppid, pgrp, sid
            if b"CoarseGrainedExecutorBackend" in cmd and session in sessions:
                found.append(int(proc.name))
        return sorted(found)


def _spark_class(*args: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    script = spark_home() / "bin" / "spark-class"
    with open(log, "wb") as f:
        return subprocess.Popen(
            [str(script), *args], stdout=f, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


@contextmanager
def cluster(root: Path, workers: int = 2, cores: int = 1) -> Iterator[Cluster]:
    """A master and ``workers`` workers of ``cores`` cores and 1 GiB each, up and registered;
    stopped when the block ends, however it ends."""
    root.mkdir(parents=True, exist_ok=True)
    env = environment()
    port, ui = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    found = Cluster(master, ui, logs=root)
    try:
        found.processes.append(_spark_class(
            "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
            str(port), "--webui-port", str(ui), log=root / "master.log", env=env,
        ))  # fmt: skip
        for n in range(workers):
            work = root / f"worker{n}"
            work.mkdir(exist_ok=True)
            found.processes.append(_spark_class(
                "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                "--cores", str(cores), "--memory", "1g", "--webui-port", str(free_port()),
                "--work-dir", str(work), log=root / f"worker{n}.log", env=env,
            ))  # fmt: skip
        deadline = time.monotonic() + START_DEADLINE
        while found.alive_workers() < workers:
            dead = [p for p in found.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f.read_text()[-2000:] for f in sorted(root.glob("*.log")))
                raise RuntimeError(f"the Spark cluster did not come up:\n{logs}")
            time.sleep(0.5)
        yield found
    finally:
        _stop(found.processes)
