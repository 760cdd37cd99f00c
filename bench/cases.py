"""The benchmark table: which shapes and work bench/run.py times, the speedup over PyTorch each
must reach, and how many floating-point operations that work is, for the GFLOP/s column.

Work kinds: a training case is one call of zero_grad, training-mode forward and backward with
dy of ones and no input gradient; a forward case is `calls` eval-mode forward calls, each one
fed the state the previous call returned (calls=1: inference, calls=100 of T=1: generation).
"""

import dataclasses

import numpy as np

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}   # gate blocks per cell kind (G)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    mode: str               # "lstm", "gru" or "rnn_tanh", as fastrnn.reference names them
    steps: int              # T of one call
    batch: int
    input_size: int
    hidden_size: int
    num_layers: int
    train: bool             # True: forward+backward; False: `calls` eval-mode forwards
    target_speedup: float   # over torch
    calls: int = 1

    def layer_input_size(self, layer):
        return self.input_size if layer == 0 else self.hidden_size

    def flops(self):
        """Multiply-adds x 2 of the matrix products the work needs, summed over layers:
            forward   2*T*B*G*H*(I_l + H)          (input and recurrent products)
            backward  2*(T-1)*B*G*H*H              (recurrent dh; none for h0: state_grad=False)
                    + 2*T*B*G*H*H                  (dW_hh)
                    + 2*T*B*G*H*I_l                (dW_ih)
                    + 2*T*B*G*H*I_l if layer > 0   (dx of the layer below; the input's dx is
                                                    skipped: input_grad=False)
        G = 4 (LSTM), 3 (GRU), 1 (RNN); I_l = input_size for layer 0, hidden_size above.
        Forward cases count `calls` forwards. Elementwise gate math is not counted.
        """
        total = 0
        for layer in range(self.num_layers):
            rows = 2 * self.steps * self.batch * GATES[self.mode] * self.hidden_size
            inputs = self.layer_input_size(layer)
            total += rows * (inputs + self.hidden_size)
            if self.train:
                recurrent_dh = rows * self.hidden_size * (self.steps - 1) / self.steps
                total += recurrent_dh + rows * (self.hidden_size + inputs + (inputs if layer > 0 else 0))
        return total * self.calls

    def with_steps(self, steps):
        """The same case cut down to `steps` time steps (or calls, for a generation case)."""
        if self.calls > 1:
            return dataclasses.replace(self, calls=steps)
        return dataclasses.replace(self, steps=steps)

    def sequence_length(self):
        """Time steps the work runs through: T, or the number of carried single steps."""
        return self.steps * self.calls

    def inputs(self, dtype, seed=0):
        """x of every call, (calls, T, B, input_size), N(0, 1), the same values for every dtype."""
        rng = np.random.default_rng(seed)
        shape = (self.calls, self.steps, self.batch, self.input_size)
        return rng.standard_normal(shape).astype(dtype)


CASES = [
    Case("LSTM large fwd+bwd", "lstm", 100, 64, 512, 512, 1, True, 1.1),
    Case("LSTM large inference", "lstm", 100, 64, 512, 512, 1, False, 1.0),
    Case("GRU large fwd+bwd", "gru", 100, 64, 512, 512, 1, True, 1.1),
    Case("RNN large fwd+bwd", "rnn_tanh", 100, 64, 512, 512, 1, True, 1.1),
    Case("char-LM LSTM fwd+bwd", "lstm", 50, 32, 65, 256, 2, True, 1.5),
    Case("ship LSTM fwd+bwd", "lstm", 10, 170, 25, 25, 2, True, 4.0),
    Case("window LSTM fwd+bwd", "lstm", 10, 1, 100, 100, 2, True, 8.0),
    Case("hihello LSTM fwd+bwd", "lstm", 6, 1, 5, 5, 1, True, 20.0),
    Case("generate LSTM 3x512", "lstm", 1, 1, 65, 512, 3, False, 3.0, calls=100),
    Case("generate LSTM 1x128", "lstm", 1, 1, 65, 128, 1, False, 10.0, calls=100),
]

# The case the machine-level targets (share of SGEMM, thread scaling, peak memory) are about.
LARGE_LSTM = CASES[0]


def matches(name, patterns):
    """True if no patterns were given or one of them is a case-insensitive substring of name."""
    return not patterns or any(pattern.lower() in name.lower() for pattern in patterns)
