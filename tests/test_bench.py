"""Smoke tests of the benchmark harnesses: `bench/run.py --quick --cases hihello` exits 0 and
writes JSON with the expected keys, with PyTorch as installed and with PyTorch hidden (the
harness must work without it, leaving the torch column empty); `bench/load.py --quick` on the
smallest case and demo does too, `bench/cells.py` checks and times every cell case, and
`bench/ort.py` checks and times one case against ONNX Runtime, and `bench/distributed.py` runs.
"""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

import fastrnn

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
# Runs bench/run.py as `python bench/run.py` would, but with `import torch` failing.
WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.path.insert(0, {bench!r}); "
                 "sys.argv = {argv!r}; runpy.run_path({script!r}, run_name='__main__')")


@pytest.mark.parametrize("hide_torch", [False, True], ids=["torch-as-installed", "without-torch"])
def test_quick_run_writes_results(tmp_path, hide_torch):
    output = tmp_path / "results.json"
    argv = [str(BENCH / "run.py"), "--quick", "--isa", fastrnn.kernel_isa(), "--cases", "hihello",
            "--json", str(output)]
    if hide_torch:
        command = [sys.executable, "-c", WITHOUT_TORCH.format(bench=str(BENCH), argv=argv, script=argv[0])]
    else:
        command = [sys.executable, *argv]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    results = json.loads(output.read_text())
    assert {"environment", "checks", "sgemm_gflops", "roof", "cases", "targets"} <= results.keys()
    assert results["sgemm_gflops"] > 0 and results["roof"]["gflops"] > 0
    assert results["checks"] and all(check["passed"] for check in results["checks"])
    (case,) = results["cases"]
    assert case["name"] == "hihello LSTM fwd+bwd"
    assert {"ms", "gflops", "percent_of_sgemm", "percent_of_roof", "speedup_vs_torch", "target",
            "measurements"} <= case.keys()
    with_torch = not hide_torch and importlib.util.find_spec("torch") is not None
    assert set(case["ms"]) == {"fastrnn", "reference"} | ({"torch"} if with_torch else set())
    assert all(value > 0 for value in case["ms"].values())
    assert (case["speedup_vs_torch"] is not None) == with_torch
    assert (case["target"]["passed"] is not None) == with_torch


def test_a_run_times_every_variant_this_cpu_can_run(tmp_path):
    output = tmp_path / "results.json"
    command = [sys.executable, str(BENCH / "run.py"), "--quick", "--cases", "hihello", "--json", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(output.read_text())
    assert list(results) == fastrnn.available_isas()
    for isa, result in results.items():
        assert result["environment"]["kernel_isa"] == isa
        assert [case["name"] for case in result["cases"]] == ["hihello LSTM fwd+bwd"]


def test_quick_load_run_writes_results(tmp_path):
    output = tmp_path / "load.json"
    command = [sys.executable, str(BENCH / "load.py"), "--quick", "--cases", "hihello", "--demos", "hihello",
               "--json", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(output.read_text())
    for section in ("under_load", "idle"):
        assert set(results[section]) == {"hihello LSTM fwd+bwd", "demo hihello"}
        for row in results[section].values():
            assert row["default_s"] > 0 and row["single_s"] > 0 and row["rounds"] >= 3
            assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    assert set(results["side_by_side"]) == {"hihello"}
    assert results["worst_ratio_under_load"] == max(row["ratio"] for row in results["under_load"].values())


def test_cells_benchmark_checks_and_times_every_case(tmp_path):
    pytest.importorskip("torch")
    output = tmp_path / "cells.json"
    completed = subprocess.run([sys.executable, str(BENCH / "cells.py"), "--repeats", "1", "--steps", "2",
                                "--json", str(output)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(output.read_text())["results"]
    assert {(result["cell"], result["batch"], result["mode"]) for result in results} >= {
        ("LSTM", 1, "inference"), ("LSTM", 64, "train"), ("GRU", 1, "train"), ("RNN", 64, "inference")}
    assert all(result["fastrnn_us_per_step"] > 0 and result["torch_us_per_step"] > 0 for result in results)


def test_the_onnx_runtime_comparison_checks_and_times_a_case():
    for module in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the test extra)")
    completed = subprocess.run([sys.executable, str(BENCH / "ort.py"), "--quick", "--threads", "1", "--cases",
                                "window"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = [line for line in completed.stdout.splitlines() if line.startswith("window 2x100 LSTM")]
    assert len(rows) == 2 and all(row.split()[-2].endswith("x") for row in rows)   # spinning off, then on
    profiled = subprocess.run([sys.executable, str(BENCH / "ort.py"), "--quick", "--profile", "--cases", "window"],
                              capture_output=True, text=True, timeout=120)
    assert profiled.returncode == 0, profiled.stdout + profiled.stderr
    assert "recurrent products, 20 steps of 1x100 @ 100x400" in profiled.stdout
    assert "the whole case" in profiled.stdout


def test_the_distributed_benchmark_measures_throughput_and_the_scaling_model():
    if importlib.util.find_spec("mpi4py") is None or shutil.which("mpiexec") is None:
        pytest.skip("mpi4py and mpiexec are not installed (the mpi extra)")
    completed = subprocess.run([sys.executable, str(BENCH / "distributed.py"), "--quick"], capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "| 2 processes x 1 thread |" in completed.stdout
    assert "| large LSTM (T=100, B=64, 512) | 9.456 MB |" in completed.stdout
