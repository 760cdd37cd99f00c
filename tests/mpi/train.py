"""A training script for tests/test_distributed.py, run as `mpiexec -n N python train.py OPTIONS`
or as a plain process: a small float64 character model on fixed random data, trained with
fit(..., distributed=fastrnn.distributed.mpi()); rank 0 writes the per-epoch losses and the
final parameters to OPTIONS["out"] (.npz). OPTIONS is JSON: rows, batch_size, epochs, stateful,
lengths, validation, fail_rank (that rank raises in the first epoch's callback), checkpoint
(saved after every epoch by rank 0), resume (start from the checkpoint), different (this rank
builds a different model), diverge (this rank changes a parameter after each epoch)."""
import json
import sys

import numpy as np

import fastrnn
import fastrnn.distributed
from fastrnn import LSTM, Dense, Embedding, Sequential

options = json.loads(sys.argv[1])
communicator = fastrnn.distributed.mpi()
rank = 0 if communicator is None else communicator.rank
rng = np.random.default_rng(0)
rows, steps, classes = options.get("rows", 32), 6, 5
x = rng.integers(0, classes, (rows, steps))
y = np.roll(x, -1, axis=1)
lengths = rng.integers(1, steps + 1, rows) if options.get("lengths") else None

if options.get("resume"):
    model = fastrnn.load(options["checkpoint"])
else:
    hidden = 7 if options.get("different") == rank else 6
    model = Sequential([Embedding(classes, 4, dtype="float64", seed=1),
                        LSTM(4, hidden, num_layers=2, batch_first=True, dtype="float64", seed=2),
                        Dense(hidden, classes, dtype="float64", seed=3)], seed=4)
    model.compile(fastrnn.optim.Adam(lr=0.01, clip_norm=0.5), "cross_entropy")


def end_of_epoch(epoch, logs):
    if options.get("fail_rank") == rank:
        raise RuntimeError("a deliberate failure in a callback")
    if options.get("diverge") == rank:   # what a rank that computed differently would leave
        model.parameter_buffers()[0][0][0] += 1e-9
    if options.get("checkpoint") and rank == 0:
        model.save(options["checkpoint"])


validation = (x[:9], y[:9]) if options.get("validation") else None
history = model.fit(x, y, epochs=options.get("epochs", 1), batch_size=options.get("batch_size", 16),
                    shuffle=not options.get("stateful"), stateful=bool(options.get("stateful")), lengths=lengths,
                    validation_data=validation, initial_epoch=model.epochs_done, verbose=0,
                    callbacks=[end_of_epoch], distributed=communicator).history
if rank == 0 and options.get("out"):
    np.savez(options["out"], parameters=model.parameter_buffers()[0][0],
             **{name: np.array(values) for name, values in history.items()})
