"""The README's examples run as written and learn what they claim."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name):
    # One BLAS thread: on a small shared machine numpy's OpenBLAS threads and the kernels' own
    # pool preempt each other, which can make these few-second scripts take ten times longer.
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert result.returncode == 0, result.stderr
    return result


def test_char_model_learns_its_text():
    output = run_example("char_model.py").stdout
    assert "build a ship" in output


def test_time_series_predicts_the_next_value():
    words = run_example("time_series.py").stdout.split()
    predicted, true = float(words[words.index("predicted") + 1]), float(words[words.index("true") + 1])
    assert predicted == pytest.approx(true, abs=0.15)
