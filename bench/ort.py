"""fastrnn against ONNX Runtime on inference: the same weights, exported with fastrnn.onnx, timed
in the same process, interleaved, median of several rounds; at 1 and 2 threads each, with ONNX
Runtime's intra-op spin-waiting off and on.

Spinning, ONNX Runtime's default, keeps its idle pool threads busy-waiting for the next call.
In one process beside fastrnn that distorts the comparison: the spinning threads hold the
cores that fastrnn's own threads need, so fastrnn's timings fall for reasons that are not its
own. The table with spinning off is the fair one; the one with it on shows the cost users see
when they mix the two.

Checks first: ONNX Runtime's outputs equal fastrnn's within 1e-4 on every case.

    python bench/ort.py [--quick] [--threads 1,2] [--cases PATTERN,...]
"""

import argparse
import dataclasses
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, to smoke-test the script")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--cases", help="comma-separated substrings of the case names to run")
    args = parser.parse_args()
    rounds, min_seconds = (3, 0.02) if args.quick else (9, 0.2)
    cases = [case for case in CASES if not args.cases or any(p.lower() in case.name.lower()
                                                             for p in args.cases.split(","))]
    print(f"CPU: {cpu_model()}; fastrnn {fastrnn.__version__} "
          f"({fastrnn.kernel_isa()} kernels), ONNX Runtime {onnxruntime.__version__}, NumPy {np.__version__}")
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
