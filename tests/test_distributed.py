"""Data-parallel training over MPI: real `mpiexec -n 2` runs of tests/mpi/train.py against the
same script in one process (float64, Adam with clipping); those are skipped without mpi4py and
mpiexec (the mpi extra)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastrnn

SCRIPT = Path(__file__).resolve().parent / "mpi" / "train.py"
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                                reason="mpi4py and mpiexec are not installed (the mpi extra)")


def train(tmp_path, ranks, name, **options):
    """Runs the script on `ranks` processes (0: one plain process, no launcher); its results."""
    out = tmp_path / f"{name}.npz"
    command = [sys.executable, str(SCRIPT), json.dumps({**options, "out": str(out)})]
    completed = subprocess.run([MPIEXEC, "-n", str(ranks), *command] if ranks else command, capture_output=True,
                               text=True, timeout=300, env=without_launcher_variables())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return dict(np.load(out))


def without_launcher_variables():
    """This process's environment minus what an MPI launcher sets (pytest itself may run under one)."""
    from fastrnn.distributed import LAUNCHER_VARIABLES
    return {key: value for key, value in os.environ.items() if key not in LAUNCHER_VARIABLES}


def assert_same_training(one, two):
    relative = np.abs(one["parameters"] - two["parameters"]).max() / np.abs(one["parameters"]).max()
    assert relative < 1e-12, relative
    for name in one:
        if name != "parameters":
            np.testing.assert_allclose(two[name], one[name], rtol=1e-12, atol=0, err_msg=name)


@needs_mpi
def test_two_ranks_train_as_one_process_on_the_global_batch(tmp_path):
    options = dict(rows=32, batch_size=16, epochs=10)   # 20 steps
    assert_same_training(train(tmp_path, 0, "one", **options), train(tmp_path, 2, "two", **options))


@needs_mpi
def test_an_uneven_last_batch_lengths_and_validation_are_shared_out(tmp_path):
    # 37 rows: two batches of 16 (8 + 8 rows per rank), then 5 (2 + 3); validation 9 rows (4 + 5).
    options = dict(rows=37, batch_size=16, epochs=3, lengths=True, validation=True)
    one, two = train(tmp_path, 0, "one", **options), train(tmp_path, 2, "two", **options)
    assert {"val_loss", "val_accuracy"} <= one.keys()
    assert_same_training(one, two)


@needs_mpi
def test_a_batch_smaller_than_the_ranks_leaves_a_rank_without_rows(tmp_path):
    options = dict(rows=5, batch_size=1, epochs=2)   # every batch: one row, one rank idle
    assert_same_training(train(tmp_path, 0, "one", **options), train(tmp_path, 2, "two", **options))


@needs_mpi
def test_stateful_training_carries_each_ranks_streams(tmp_path):
    options = dict(rows=32, batch_size=16, epochs=4, stateful=True)
    assert_same_training(train(tmp_path, 0, "one", **options), train(tmp_path, 2, "two", **options))


@needs_mpi
def test_a_checkpoint_of_two_ranks_resumes_on_one(tmp_path):
    checkpoint = str(tmp_path / "checkpoint.npz")
    train(tmp_path, 2, "first", rows=32, batch_size=16, epochs=2, checkpoint=checkpoint)
    resumed = train(tmp_path, 0, "resumed", rows=32, batch_size=16, epochs=4, checkpoint=checkpoint, resume=True)
    straight = train(tmp_path, 0, "straight", rows=32, batch_size=16, epochs=4)
    relative = np.abs(resumed["parameters"] - straight["parameters"]).max() / np.abs(straight["parameters"]).max()
    assert relative < 1e-12, relative
    np.testing.assert_allclose(resumed["loss"], straight["loss"][2:], rtol=1e-12)


def launch_failing(tmp_path, **options):
    command = [MPIEXEC, "-n", "2", sys.executable, str(SCRIPT), json.dumps({"rows": 32, "epochs": 3, **options})]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=without_launcher_variables())


@needs_mpi
def test_a_rank_that_raises_ends_every_rank_with_its_rank_and_error(tmp_path):
    completed = launch_failing(tmp_path, fail_rank=1)   # timeout: a rank left waiting would hang
    assert completed.returncode != 0
    assert "fastrnn.distributed: rank 1 of 2 failed: RuntimeError: a deliberate failure in a callback" in \
        completed.stderr


@needs_mpi
def test_ranks_whose_parameters_drift_apart_are_stopped(tmp_path):
    completed = launch_failing(tmp_path, diverge=1)
    assert completed.returncode != 0
    assert "the parameters of ranks [1] differ from rank 0's" in completed.stderr


@needs_mpi
def test_ranks_with_different_models_are_refused_at_the_start(tmp_path):
    completed = launch_failing(tmp_path, different=1)
    assert completed.returncode != 0
    assert "distributed: the ranks must train the same model on the same data; rank 1: model" in completed.stderr
    assert "parameters" in completed.stderr


def test_without_a_launcher_mpi_is_none_and_mpi4py_stays_unimported():
    code = ("import sys, fastrnn.distributed as d; assert d.mpi() is None and d.rank() == 0; "
            "assert 'mpi4py' not in sys.modules")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                               env=without_launcher_variables())
    assert completed.returncode == 0, completed.stderr


@needs_mpi
def test_the_charlm_demo_runs_under_mpiexec_as_is(tmp_path):
    demo = [sys.executable, "-m", "fastrnn.demos", "charlm", "--quick"]
    runs = [subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=without_launcher_variables())
            for command in (demo, [MPIEXEC, "-n", "2", *demo])]
    for completed in runs:
        assert completed.returncode == 0, completed.stdout + completed.stderr
    results = [[line for line in completed.stdout.splitlines() if line.startswith("charlm: validation")]
               for completed in runs]
    assert len(results[1]) == 1   # rank 0 alone reports
    assert results[1] == results[0]   # the same training, to the printed digits


def test_fit_names_a_distributed_argument_that_is_not_a_communicator():
    model = fastrnn.Sequential([fastrnn.OneHot(3), fastrnn.LSTM(3, 2, batch_first=True), fastrnn.Dense(2, 3)])
    model.compile("adam", "cross_entropy")
    x = np.zeros((2, 4), np.int64)
    with pytest.raises(TypeError, match="distributed: expected fastrnn.distributed.mpi"):
        model.fit(x, x, distributed=True, verbose=0)
    with pytest.raises(TypeError, match="got str"):
        model.evaluate(x, x, distributed="mpi")
