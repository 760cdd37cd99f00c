"""The README's code runs as written: its example blocks are the files in examples/ (run by
test_examples.py), and its interoperability and cell blocks run here."""

import pathlib
import re

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_examples_in_the_readme_are_the_example_files():
    for name in ("char_model.py", "time_series.py"):
        source = (ROOT / "examples" / name).read_text()
        body = source.split('"""', 2)[2].strip() if source.startswith('"""') else source.strip()
        assert body + "\n" in BLOCKS, f"README shows a different examples/{name}"


def test_the_pytorch_block_runs():
    pytest.importorskip("torch")
    block = next(block for block in BLOCKS if "torch_lstm" in block)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["dx"].shape == (5, 3, 8) and namespace["y"].shape == (5, 3, 32)


def test_the_cell_block_runs():
    block = next(block for block in BLOCKS if "LSTMCell" in block)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    cell, dx, (dh0, dc0) = namespace["cell"], namespace["dx"], namespace["dstate"]
    assert dx.shape == (4, 8) and dh0.shape == dc0.shape == (4, 16)
    assert cell.recorded_steps() == 0 and np.abs(cell.grads["weight_hh"]).max() > 0


def test_the_onnx_block_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx", reason="onnx is not installed (the onnx extra)")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the test extra)")
    from fastrnn.demos import charlm
    monkeypatch.chdir(tmp_path)
    charlm.main(["--quick", "--checkpoint", "charlm.npz"])
    block = next(block for block in BLOCKS if "fastrnn.onnx.export" in block)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    model = namespace["fastrnn"].load("charlm.npz")
    expected = model.predict(model.vocabulary.encode("def ")[None])
    np.testing.assert_allclose(namespace["logits"], expected, rtol=1e-5, atol=1e-5)
