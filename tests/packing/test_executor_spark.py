"""`imgrec pack --runner spark` on a real Spark standalone cluster on 127.0.0.1 (a master
and two workers, each its own JVM, started and stopped by the tests): the shards are written
by Spark tasks and are byte for byte the local executor's, also when an executor is killed
in the middle of the pack and Spark retries its tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spark_cluster
from fixtures import files_of, smooth_rgb
from PIL import Image

from imgrec import PackOptions, pack
from imgrec.core.errors import InputError
from imgrec.format.layout import JOURNAL
from imgrec.packing.executors.spark import spark_settings

# slow; and in one xdist worker, so that one cluster serves the module
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

PACK_DEADLINE = 300.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with spark_cluster.cluster(tmp_path_factory.mktemp("spark")) as found:
        yield found


def photos(root: Path, n: int, side: int = 96) -> Path:
    """``n`` photo-like JPEGs and PNGs in three classes, and one damaged file."""
    for i in range(n):
        folder = root / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(smooth_rgb(side, side + 16, seed=i))
        im.save(folder / f"img{i:04d}.{'jpg' if i % 2 else 'png'}")
    (root / "class0" / "cut.png").write_bytes((root / "class0" / "img0000.png").read_bytes()[:90])
    return root


def imgrec_cli(*args: object, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "imgrec", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finished(process: subprocess.Popen[bytes]) -> str:
    try:
        out, err = process.communicate(timeout=PACK_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=30)
        raise AssertionError(
            f"the pack did not finish in {PACK_DEADLINE} s: {err[-3000:]!r}"
        ) from None
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode()


@pytest.mark.parametrize("options", [["--shards", "3"], ["--split", "train=0.7,val=0.3"]])
def test_spark_writes_the_local_executors_bytes(cluster, tmp_path, options):
    src = photos(tmp_path / "src", 40)
    pack(src, tmp_path / "local", PackOptions(shards=3) if options[0] == "--shards"
         else PackOptions(split=(("train", 0.7), ("val", 0.3))))  # fmt: skip
    env = spark_cluster.environment()
    run = imgrec_cli("pack", src, tmp_path / "spark", "--runner", "spark", "--spark-master",
                     cluster.master, "--spark-conf", "spark.ui.enabled=false", *options,
                     env=env)  # fmt: skip
    assert "Packed 40 images" in finished(run)
    assert files_of(tmp_path / "spark") == files_of(tmp_path / "local")


def test_an_executor_killed_mid_pack_is_retried_and_the_bytes_are_the_same(cluster, tmp_path):
    """Each image re-encoded (--format png), so the shards' job lasts: once it has started
    (its work list written) and before any shard is written, one worker's executor is
    killed (SIGKILL) while it packs images. Spark reruns its tasks on a new executor; no
    partial or extra shard is left, and the bytes are the local executor's."""
    src = photos(tmp_path / "src", 240, side=160)
    pack(src, tmp_path / "local", PackOptions(format="png", shards=12))
    out = tmp_path / "spark"
    run = imgrec_cli("pack", src, out, "--runner", "spark", "--spark-master", cluster.master,
                     "--spark-conf", "spark.ui.enabled=false", "--format", "png",
                     "--shards", "12", env=spark_cluster.environment())  # fmt: skip
    work = out / JOURNAL / "work.jsonl"
    deadline = time.monotonic() + PACK_DEADLINE
    killed, written = None, -1
    while killed is None and time.monotonic() < deadline and run.poll() is None:
        executors = cluster.executors()
        if work.exists() and len(executors) == 2:
            time.sleep(0.5)  # into the packing
            written = len(list(out.glob("*.tfrecord")))
            killed = executors[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    assert killed is not None, "the pack ended before an executor could be killed mid-way"
    finished(run)
    assert written == 0  # killed while the images were being packed, before any shard
    assert files_of(out) == files_of(tmp_path / "local")
    logs = "".join(p.read_text(errors="replace") for p in cluster.logs.glob("worker*.log"))
    assert "Command exited with code 137" in logs  # the worker saw its executor killed


def test_settings_and_runner_options_are_checked_before_anything_starts(tmp_path):
    assert spark_settings(["spark.executor.memory=4g", "a.b="]) == [
        ("spark.executor.memory", "4g"), ("a.b", ""),
    ]  # fmt: skip
    with pytest.raises(InputError, match="--spark-conf wants KEY=VALUE"):
        spark_settings(["spark.executor.memory"])
    src = photos(tmp_path / "src", 3)
    with pytest.raises(InputError, match="are for --runner spark"):
        pack(src, tmp_path / "out", PackOptions(spark_master="local[1]"))
    assert not (tmp_path / "out").exists()


def test_resume_across_runners(cluster, tmp_path, monkeypatch):
    """A pack interrupted on the local executor (after its shards, before its manifest;
    then one shard lost) is finished by Spark: the journal does not depend on the runner."""
    import imgrec.packing.driver

    src = photos(tmp_path / "src", 30)
    pack(src, tmp_path / "local", PackOptions(shards=5))
    out = tmp_path / "out"

    def interrupted(folder: object, manifest: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(imgrec.packing.driver, "write_manifest", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pack(src, out, PackOptions(shards=5))
    shards = sorted(out.glob("*.tfrecord"))
    assert len(shards) == 5 and not (out / "manifest.json").exists()
    shards[2].unlink()
    run = imgrec_cli("pack", src, out, "--resume", "--runner", "spark", "--spark-master",
                     cluster.master, "--shards", "5", env=spark_cluster.environment())  # fmt: skip
    finished(run)
    assert files_of(out) == files_of(tmp_path / "local")


def test_without_pyspark_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    from imgrec.core.errors import DependencyError

    src = photos(tmp_path / "src", 3)
    with pytest.raises(DependencyError, match=r'pip install "imgrec\[spark\]"'):
        pack(src, tmp_path / "out", PackOptions(runner="spark"))
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def session(cluster):
    """A Spark session in this process, on the cluster."""
    from pyspark.sql import SparkSession

    saved = dict(os.environ)
    os.environ.update(spark_cluster.environment())
    spark = (
        SparkSession.builder.master(cluster.master)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    try:
        yield spark
    finally:
        spark.stop()
        os.environ.clear()
        os.environ.update(saved)


def binary_files(spark, src: Path):
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(str(src))


def test_a_binaryfile_dataframe_packs_as_the_folder_whatever_its_partitions(session, tmp_path):
    from imgrec.spark import write

    src = photos(tmp_path / "src", 45)
    opts = PackOptions(split=(("train", 0.7), ("val", 0.2), ("test", 0.1)), shards=2)
    local = pack(src.resolve(), tmp_path / "local", opts).to_dict()
    df = binary_files(session, src)
    for parts in (1, 7):
        manifest = write(df.repartition(parts), tmp_path / f"frame{parts}", opts).to_dict()
        assert manifest == local
        assert files_of(tmp_path / f"frame{parts}") == files_of(tmp_path / "local")
    reasons = {s["path"]: s["reason"] for s in local["skipped"]}
    assert reasons["class0/cut.png"].startswith("truncated: ")  # damaged: skipped and named


def test_a_label_column_and_bad_frames(session, tmp_path):
    from pyspark.sql import functions as F

    from imgrec.spark import write

    src = photos(tmp_path / "src", 12)
    df = binary_files(session, src).withColumn(
        "kind", F.when(F.col("path").endswith(".png"), "drawing").otherwise("photo")
    )
    manifest = write(df, tmp_path / "labelled", PackOptions(), label_col="kind").to_dict()
    assert manifest["labels"] == ["drawing", "photo"]
    with pytest.raises(InputError, match="no column 'nope'"):
        write(df, tmp_path / "x", label_col="nope")
    doubled = df.union(df.limit(1))
    with pytest.raises(InputError, match="two rows for"):
        write(doubled, tmp_path / "doubled")
    assert not (tmp_path / "x").exists()
