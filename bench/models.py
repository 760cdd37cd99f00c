"""One benchmark case run by one library (fastrnn, PyTorch or the NumPy reference) behind a
common face: `run()` does exactly the work that is timed, `outputs()` returns what the last
run produced as NumPy arrays under shared names, so the correctness checks compare the very
code path the timings measure.

Output names: "y" (the outputs of all calls, concatenated in time), "h_n" and "c_n" (the final
state), and "grad <parameter>" for training cases. The gradient of the initial state is neither
computed nor compared: PyTorch does not compute it for the timed work (its h0 does not require
grad), and fastrnn skips it the same way (state_grad=False).
"""

import numpy as np

import fastrnn
from fastrnn import reference

try:
    import torch
except ImportError:
    torch = None

STATE_NAMES = ("h_n", "c_n")


def initial_parameters(case, seed=0):
    """PyTorch-named float64 parameters with PyTorch's initialisation."""
    return reference.init_params(case.mode, case.input_size, case.hidden_size, case.num_layers, seed=seed)


class Model:
    """Shared driver: subclasses provide `forward(x, state)`, `train_step()` and `gradients()`."""

    def __init__(self, case, dtype):
        self.case = case
        self.xs = case.inputs(dtype)   # (calls, T, B, I)
        self.dy = np.ones((case.steps, case.batch, case.hidden_size), dtype)
        self.ys, self.state = [], None

    def run(self):
        if self.case.train:
            self.train_step()
        else:
            self.forward_calls()

    def forward_calls(self):
        """Eval-mode forwards, each call fed the state the previous one returned."""
        state, ys = None, []
        for x in self.xs:
            y, state = self.forward(x, state)
            ys.append(y)
        self.ys, self.state = ys, state

    @staticmethod
    def array(value):
        """A library's array or tensor as a NumPy array (a copy: later runs may overwrite it)."""
        return np.array(value)

    def outputs(self):
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        results = {"y": np.concatenate([self.array(y) for y in self.ys]),
                   **{name: self.array(part) for name, part in zip(STATE_NAMES, parts)}}
        if self.case.train:
            results.update({f"grad {name}": self.array(grad) for name, grad in self.gradients()})
        return results


class FastrnnModel(Model):
    LAYERS = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn_tanh": fastrnn.RNN}

    def __init__(self, case, params, dtype=np.float32):
        super().__init__(case, dtype)
        self.layer = self.LAYERS[case.mode](case.input_size, case.hidden_size, case.num_layers,
                                            dtype=np.dtype(dtype).name)
        self.layer.load_state_dict(params)
        self.layer.train(case.train)

    def forward(self, x, state):
        return self.layer(x, state)

    def train_step(self):
        self.layer.zero_grad()
        y, self.state = self.layer(self.xs[0])
        self.layer.backward(self.dy, input_grad=False, state_grad=False)
        self.ys = [y]

    def gradients(self):
        return self.layer.grads.items()


class TorchModel(Model):
    def __init__(self, case, params, dtype=np.float32):
        super().__init__(case, dtype)
        modules = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}
        self.module = modules[case.mode](case.input_size, case.hidden_size, case.num_layers)
        self.module.to(getattr(torch, np.dtype(dtype).name))
        self.module.load_state_dict({name: torch.from_numpy(value) for name, value in params.items()})
        self.module.train(case.train)
        self.xs = torch.from_numpy(self.xs)
        self.dy = torch.from_numpy(self.dy)

    def forward(self, x, state):
        return self.module(x, state)

    def forward_calls(self):
        with torch.no_grad():
            super().forward_calls()

    def train_step(self):
        self.module.zero_grad()
        y, self.state = self.module(self.xs[0])
        y.backward(self.dy)
        self.ys = [y]

    @staticmethod
    def array(value):
        return value.detach().numpy().copy()

    def gradients(self):
        return ((name, parameter.grad) for name, parameter in self.module.named_parameters())


class ReferenceModel(Model):
    def __init__(self, case, params, dtype=np.float32):
        super().__init__(case, dtype)
        self.params = {name: value.astype(dtype) for name, value in params.items()}
        self.grads = None

    def forward(self, x, state):
        y, state, _ = reference.forward(self.case.mode, x, self.params, num_layers=self.case.num_layers,
                                        state=state)
        return y, state

    def train_step(self):
        y, self.state, cache = reference.forward(self.case.mode, self.xs[0], self.params,
                                                 num_layers=self.case.num_layers)
        _, _, self.grads = reference.backward(cache, self.dy)
        self.ys = [y]

    def gradients(self):
        return self.grads.items()


LIBRARIES = {"fastrnn": FastrnnModel, "torch": TorchModel, "reference": ReferenceModel}


def available_libraries():
    """The libraries this machine can run, fastrnn first."""
    return [name for name in LIBRARIES if name != "torch" or torch is not None]
