"""fastrnn against ONNX Runtime on inference: the same weights, exported with fastrnn.onnx, timed
in the same process, interleaved, median of several rounds; at 1 and 2 threads each, with ONNX
Runtime's intra-op spin-waiting off and on.

Spinning, ONNX Runtime's default, keeps its idle pool threads busy-waiting for the next call.
In one process beside fastrnn that distorts the comparison: the spinning threads hold the
cores that fastrnn's own threads need, so fastrnn's timings fall for reasons that are not its
own. The table with spinning off is the fair one; the one with it on shows the cost users see
when they mix the two.

Checks first: ONNX Runtime's outputs equal fastrnn's within 1e-4 on every case.

--profile splits a case's work into its phases, each timed alone in both libraries on one
thread: the input projections (one product over all steps per layer), the recurrent products
(the same flops as T products of B rows: timed as T separate products, and as one product of
T*B rows, what they would cost without the time loop), and the gate activations (sigmoid and
tanh over every step's gates). fastrnn's phases run through the kernels its layers use, on the
weights as the layers hold them ([gates, inputs], read in place or packed on every call): the
projections and the products of a batch of one or two rows through _core.linear_forward_float32
(dot products on the weights for up to 16 rows, else a product that packs them), the recurrent
products of larger batches through the test hook _core.matmul_float32 on W_hh^T (read in place
up to 16 rows, packed on every call above: the layer packs once per call), the activations
through _core.activation_float32. ONNX Runtime's run as one-operator graphs (MatMul with the
weights as a constant, packed once when the session loads, as its LSTM holds them; Sigmoid;
Tanh). The roof is OpenBLAS's SGEMM on one thread, with its own choice of kernel for this CPU.

    python bench/ort.py [--quick] [--threads 1,2] [--cases PATTERN,...] [--profile]
"""

import argparse
import dataclasses
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
from timing import cpu_model, time_interleaved  # noqa: E402

import fastrnn  # noqa: E402
from fastrnn import GRU, LSTM, RNN, Sequential  # noqa: E402

try:
    import fastrnn.onnx
    import onnxruntime
except ImportError as error:
    sys.exit(f"bench/ort.py needs onnx and onnxruntime ({error}): pip install onnx onnxruntime")


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    layer: type
    input_size: int
    hidden_size: int
    num_layers: int
    batch: int
    steps: int
    calls: int = 1   # > 1: generation, `calls` single steps with the state carried


CASES = [
    Case("LSTM large inference T=100 B=64 512", LSTM, 512, 512, 1, 64, 100),
    Case("GRU large inference T=100 B=64 512", GRU, 512, 512, 1, 64, 100),
    Case("RNN large inference T=100 B=64 512", RNN, 512, 512, 1, 64, 100),
    Case("char model 2x256 LSTM T=50 B=32", LSTM, 65, 256, 2, 32, 50),
    Case("window 2x100 LSTM T=10 B=1", LSTM, 100, 100, 2, 1, 10),
    Case("generate 100 steps LSTM 1x128", LSTM, 65, 128, 1, 1, 1, calls=100),
    Case("generate 100 steps LSTM 3x512", LSTM, 65, 512, 3, 1, 1, calls=100),
]


class Contenders:
    """One case's fastrnn layer and ONNX Runtime session on the same weights and inputs."""

    def __init__(self, case, threads, spinning):
        rng = np.random.default_rng(0)
        self.case = case
        self.layer = case.layer(case.input_size, case.hidden_size, num_layers=case.num_layers, batch_first=True,
                                seed=1)
        self.layer.eval()
        proto = fastrnn.onnx.to_model(Sequential([self.layer]), states=case.calls > 1)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        self.xs = rng.standard_normal((case.calls, case.batch, case.steps, case.input_size)).astype(np.float32)
        self.parts = ("h", "c") if case.layer is LSTM else ("h",)

    def fastrnn(self):
        state, ys = None, []
        for x in self.xs:
            y, state = self.layer(x, state)
            ys.append(y)
        return np.concatenate(ys, axis=1)

    def onnx_runtime(self):
        if self.case.calls == 1:
            return self.session.run(["y"], {"x": self.xs[0]})[0]
        shape = (self.case.num_layers, 1, self.case.hidden_size)
        feeds = {f"{part}0_0": np.zeros(shape, np.float32) for part in self.parts}
        names = ["y"] + [f"{part}n_0" for part in self.parts]
        ys = []
        for x in self.xs:
            y, *state = self.session.run(names, {**feeds, "x": x})
            feeds = {f"{part}0_0": value for part, value in zip(self.parts, state)}
            ys.append(y)
        return np.concatenate(ys, axis=1)


def profile(case, rounds, min_seconds, roof):
    """Per-phase times of `case`'s forward in fastrnn and ONNX Runtime, one thread each."""
    from onnx import TensorProto, helper, numpy_helper

    from fastrnn import _core

    rng = np.random.default_rng(0)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    def onnx_op(op, shape, constant=None):
        """A session of one `op` node on an input of `shape` (and `constant`, an initializer)."""
        inputs = ["a"] + (["b"] if constant is not None else [])
        graph = helper.make_graph([helper.make_node(op, inputs, ["y"])], op, [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(constant, "b")] if constant is not None else [])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return lambda a: session.run(["y"], {"a": a})

    G, H, T, B = 4 if case.layer is LSTM else 3 if case.layer is GRU else 1, case.hidden_size, case.steps, case.batch
    phases = []   # (name, flops, fastrnn callable, ORT callable)
    for depth in range(case.num_layers):
        inputs = case.input_size if depth == 0 else H
        x, w = rng.standard_normal((T * B, inputs), np.float32), rng.standard_normal((G * H, inputs), np.float32)
        run = onnx_op("MatMul", x.shape, np.ascontiguousarray(w.T))
        phases.append((f"layer {depth}: input projection ({T * B}x{inputs} @ {inputs}x{G * H})",
                       2 * T * B * inputs * G * H, lambda x=x, w=w: _core.linear_forward_float32(x, w, None),
                       lambda x=x, run=run: run(x)))
    h, w_hh = rng.standard_normal((B, H), np.float32), rng.standard_normal((G * H, H), np.float32)
    r = np.ascontiguousarray(w_hh.T)
    step = onnx_op("MatMul", h.shape, r)
    flops = 2 * T * B * H * G * H * case.num_layers
    product = (lambda: _core.linear_forward_float32(h, w_hh, None)) if B <= 2 else (lambda: _core.matmul_float32(h, r))
    phases.append((f"recurrent products, {T * case.num_layers} steps of {B}x{H} @ {H}x{G * H}", flops,
                   lambda: [product() for _ in range(T * case.num_layers)],
                   lambda: [step(h) for _ in range(T * case.num_layers)]))
    rows = rng.standard_normal((T * B, H), np.float32)
    whole = onnx_op("MatMul", rows.shape, r)
    phases.append((f"  the same flops as one product per layer ({T * B}x{H} @ {H}x{G * H})", flops,
                   lambda: [_core.matmul_float32(rows, r) for _ in range(case.num_layers)],
                   lambda: [whole(rows) for _ in range(case.num_layers)]))
    sigmoid_values = rng.standard_normal((T * B * case.num_layers, (G - 1) * H if G > 1 else H), np.float32)
    tanh_values = rng.standard_normal((T * B * case.num_layers, 2 * H if G == 4 else H), np.float32)
    sigmoid, tanh = onnx_op("Sigmoid", sigmoid_values.shape), onnx_op("Tanh", tanh_values.shape)
    phases.append((f"gate activations ({sigmoid_values.size + tanh_values.size:,} values)", 0,
                   lambda: (_core.activation_float32("sigmoid", sigmoid_values),
                            _core.activation_float32("tanh", tanh_values)),
                   lambda: (sigmoid(sigmoid_values), tanh(tanh_values))))
    contenders = Contenders(case, 1, False)
    whole_case = time_interleaved({"fastrnn": contenders.fastrnn, "ort": contenders.onnx_runtime}, rounds, min_seconds)

    print(f"\n{case.name}, 1 thread each, phase by phase (ms; GFLOP/s, the roof: {roof:.0f}):")
    print(f"{'phase':66} {'fastrnn':>16} {'ONNX Runtime':>16}")
    for name, flops, ours, theirs in phases:
        times = time_interleaved({"fastrnn": ours, "ort": theirs}, rounds, min_seconds)
        cells = [f"{times[who][0] * 1e3:8.3f}" + (f" ({flops / times[who][0] / 1e9:5.1f})" if flops else " " * 8)
                 for who in ("fastrnn", "ort")]
        print(f"{name:66} {cells[0]:>16} {cells[1]:>16}")
    print(f"{'the whole case (the layer; the LSTM/GRU/RNN operator)':66} {whole_case['fastrnn'][0] * 1e3:8.3f}"
          f"{'':8} {whole_case['ort'][0] * 1e3:8.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, to smoke-test the script")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--cases", help="comma-separated substrings of the case names to run")
    parser.add_argument("--profile", action="store_true", help="time each case's phases alone, 1 thread")
    args = parser.parse_args()
    rounds, min_seconds = (3, 0.02) if args.quick else (9, 0.2)
    cases = [case for case in CASES if not args.cases or any(p.lower() in case.name.lower()
                                                             for p in args.cases.split(","))]
    print(f"CPU: {cpu_model()}; fastrnn {fastrnn.__version__} "
          f"({fastrnn.kernel_isa()} kernels), ONNX Runtime {onnxruntime.__version__}, NumPy {np.__version__}")
    if args.profile:
        fastrnn.set_num_threads(1)
        roof = timing.roof(rounds, threads=1)
        print(f"Roof: OpenBLAS SGEMM 2048x2048 float32 on one thread, {roof['openblas_core']} kernels: "
              f"{roof['gflops']:.0f} GFLOP/s")
        for case in cases:
            profile(case, rounds, min_seconds, roof["gflops"])
        return
    for threads in [int(t) for t in args.threads.split(",")]:
        fastrnn.set_num_threads(threads)
        for spinning in (False, True):
            print(f"\n{threads} thread(s) each; ONNX Runtime spin-waiting {'ON' if spinning else 'off'}")
            print(f"{'case':40} {'fastrnn ms':>11} {'ORT ms':>9} {'speed-up':>9}  (per-round range)")
            for case in cases:
                contenders = Contenders(case, threads, spinning)
                error = np.abs(contenders.fastrnn() - contenders.onnx_runtime()).max()
                if not error < 1e-4:
                    sys.exit(f"{case.name}: fastrnn and ONNX Runtime differ by {error:.3g}")
                times = time_interleaved({"fastrnn": contenders.fastrnn, "ort": contenders.onnx_runtime},
                                         rounds, min_seconds)
                (median_f, rounds_f), (median_o, rounds_o) = times["fastrnn"], times["ort"]
                ratios = [o / f for f, o in zip(rounds_f, rounds_o)]   # round by round: same load
                print(f"{case.name:40} {median_f * 1e3:11.3f} {median_o * 1e3:9.3f} "
                      f"{statistics.median(ratios):8.2f}x  ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
