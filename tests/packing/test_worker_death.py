"""A pack worker that dies (killed, out of memory) at any moment, even halfway through sending
its results, ends the pack with one line naming it and --resume; it never leaves the pack
waiting forever, and the resumed pack has the bytes of an uninterrupted one.

Every wait has a deadline and every subprocess a timeout."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import files_of
from processes import cli, one_error_line, packing, shards_in, start, stop, wait_until
from samples import make_src

# Runs in its own process (its workers are forked from it, and it sets an alarm): TRIALS
# times, results of a few MB each are computed by two workers while a thread SIGKILLs one of
# them at a random moment, often while it writes its results back. Each trial must end
# (WorkerDied, or every result if the kill came too late) before its alarm. It prints how the
# trials ended.
STRESS = r"""
import collections, os, random, re, signal, sys, threading, time
import multiprocessing
from imgrec.core.errors import ImgrecError
from imgrec.packing.executors.local import in_order

TRIALS, SECONDS = int(sys.argv[1]), int(sys.argv[2])

def big(n):
    return bytes(n % 251 for _ in range(1)) * (3 << 20)

def hung(signum, frame):
    print("HUNG", flush=True)
    os._exit(3)

signal.signal(signal.SIGALRM, hung)
ends = collections.Counter()
rng = random.Random(7)
for trial in range(TRIALS):
    delay = rng.uniform(0.0, 0.4)
    def kill():
        time.sleep(delay)
        children = [p.pid for p in multiprocessing.active_children()]
        if children:
            os.kill(rng.choice(children), signal.SIGKILL)
    signal.alarm(SECONDS)
    killer = threading.Thread(target=kill)
    killer.start()
    try:
        got = sum(1 for _ in in_order(big, range(60), 2, batch=2))
        ends["all" if got == 60 else "short"] += 1
    except ImgrecError as e:
        ends["died" if re.match(r"a worker process \(pid \d+\) died", str(e)) else "other"] += 1
    killer.join()
    signal.alarm(0)
print(dict(ends), flush=True)
"""


@pytest.mark.slow
def test_a_worker_killed_at_any_moment_never_leaves_the_pack_waiting(tmp_path):
    script = tmp_path / "stress.py"
    script.write_text(STRESS)
    trials = 50
    r = subprocess.run(
        [sys.executable, str(script), str(trials), "30"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "HUNG" not in r.stdout, f"a trial waited forever after its worker was killed\n{r}"
    assert r.returncode == 0, r.stderr
    ends = ast.literal_eval(r.stdout.strip().splitlines()[-1])  # printed by the script
    assert set(ends) <= {"all", "died"}, ends  # no short results, no other error
    assert sum(ends.values()) == trials
    assert ends.get("died", 0) >= trials // 5, ends  # the kills did land mid-run


def _workers_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux: from /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in children.read_text().split()] if children.exists() else []


# png: the local pack reads and encodes every image in its first pass, before its plan and
# journal, so the kill lands there and nothing is finished yet: the pack is simply run again.
# raw: the first pass reads headers only and the workers write the shards, so the kill lands
# after some shards are finished: --resume keeps them.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "written", "again"),
    [
        ("png", packing, "no shard was finished: run again"),
        ("raw", shards_in, "finished shards are kept: run again with --resume"),
    ],
    ids=["in-the-first-pass", "while-writing-shards"],
)
def test_cli_pack_whose_worker_is_killed_says_so_and_runs_again_to_the_same_bytes(
    tmp_path, mode, written, again
):
    src = make_src(tmp_path / "src", n=480, size=192)
    args = ["--format", mode, "--shards", "12", "--workers", "2", "-q"]
    out = tmp_path / "out"
    proc = start("pack", src, out, *args, cwd=tmp_path)
    try:
        wait_until(lambda: written(out) and len(_workers_of(proc.pid)) == 2, "workers", 60, proc)
        victim = _workers_of(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 1, stderr
    line = one_error_line(stderr)
    assert f"worker process (pid {victim}) died (killed by SIGKILL)" in line, line
    assert line.endswith(again), line
    assert not (out / "manifest.json").exists()
    assert _workers_of(proc.pid) == []
    resume = ["--resume"] if "--resume" in again else []
    r = cli("pack", src, out, *args, *resume, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole"
    r = cli("pack", src, whole, *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert files_of(out) == files_of(whole)
