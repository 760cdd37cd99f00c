"""Data-parallel training over MPI (the mpi extra: pip install "fastrnn[mpi]", which brings
mpi4py and an MPI with mpiexec). One line in a training script,

    model.fit(x, y, ..., distributed=fastrnn.distributed.mpi())

and `mpiexec -n 4 python train.py` trains on 4 processes (or 4 machines; Slurm's srun works
too). Every process loads the same data and builds the same model; fit then
- starts every rank from rank 0's parameters and random generators (broadcast), after checking
  that the ranks have the same model and data (ValueError otherwise, on every rank);
- splits each global batch into contiguous shards, one per rank (sizes differ by at most one
  row; a rank may get none), and weighs each rank's loss by its share of the batch's targets,
  so the update is the single-process update of the whole batch;
- sums the weighted gradients with one in-place allreduce of the model's flat gradient buffer
  per step, and every rank takes the same optimizer step: the parameters stay identical, which
  a checksum verifies every CHECK_EVERY steps (RuntimeError naming the ranks otherwise);
- averages the metrics (and shards and averages the validation) across ranks; only rank 0
  shows the progress bar;
- with stateful=True, each rank carries the states of its own rows (streams) of each batch.
Callbacks run on every rank (they may evaluate, which is collective); write files on rank 0
only: `if fastrnn.distributed.rank() == 0: model.save(path)`.

An exception on one rank during fit (a bad batch, a callback's error) aborts the whole run: the
failing rank prints its rank and the error, and MPI ends every process, so none waits forever in
a collective. For errors elsewhere in a script, start it as `mpiexec -n 4 python -m mpi4py
train.py`, which aborts the same way.

Without mpiexec, mpi() returns None, fit runs in one process as usual, and mpi4py is not even
imported: the same script runs unchanged.
"""

import hashlib
import json
import os
import sys

import numpy as np

__all__ = ["CHECK_EVERY", "Communicator", "launched_by_mpi", "mpi", "rank"]

CHECK_EVERY = 100   # steps between checksums of the parameters across ranks

# Variables the common MPI launchers set in the processes they start: MPICH and Intel MPI
# (hydra), Open MPI, MVAPICH, PMIx (Open MPI 5, Slurm), and Slurm's srun.
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS")


def __dir__():   # dir() and editors' completion: the public names only
    return __all__


def launched_by_mpi():
    """Whether an MPI launcher (mpiexec, mpirun, srun) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def mpi(comm=None):
    """The Communicator for fit(..., distributed=...): over `comm` (an mpi4py communicator;
    default: MPI.COMM_WORLD) when this process was started by an MPI launcher or `comm` is
    given; else None (one process)."""
    if comm is None and not launched_by_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError('fastrnn.distributed needs mpi4py and an MPI library: pip install "fastrnn[mpi]" '
                          '(or pip install mpi4py mpich)') from None
    return Communicator(comm if comm is not None else MPI.COMM_WORLD)


def rank():
    """This process's rank in MPI's COMM_WORLD: 0 without an MPI launcher."""
    communicator = mpi()
    return 0 if communicator is None else communicator.rank


class Communicator:
    """The collectives fit needs, over an mpi4py communicator."""

    def __init__(self, comm):
        from mpi4py import MPI
        self._mpi, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def shard(self, count):
        """This rank's contiguous part of `count` rows: a slice, sizes differing by at most one."""
        return slice(count * self.rank // self.size, count * (self.rank + 1) // self.size)

    def sum(self, array):
        """Sums `array` (contiguous) over the ranks, in place; every rank gets the sum."""
        self.comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)
        return array

    def broadcast(self, array):
        """Rank 0's `array` (contiguous), in place on every rank."""
        self.comm.Bcast(array, root=0)
        return array

    def broadcast_object(self, value):
        return self.comm.bcast(value, root=0)

    def require_same_training(self, model, x, y, lengths, batch_size, epochs, stateful):
        """ValueError on every rank unless the ranks' fit calls agree: model, data shapes, settings."""
        config = json.dumps(model.get_config(), sort_keys=True, default=str)
        self.require_same({
            "model": f"{type(model).__name__} {hashlib.sha256(config.encode()).hexdigest()[:16]}",
            "parameters": sum(view.size for view in model.params.values()), "dtype": model.dtype.name,
            "x": list(np.shape(x)), "y": list(np.shape(y)), "lengths": None if lengths is None else len(lengths),
            "batch_size": batch_size, "epochs": epochs, "stateful": bool(stateful)})

    def require_same(self, facts):
        """ValueError on every rank unless every rank's `facts` (a dict of JSON values) equal
        rank 0's; the message names the ranks and the facts that differ."""
        gathered = self.comm.allgather(facts)
        root = gathered[0]
        differences = [f"rank {rank}: " + ", ".join(f"{key} {value!r} (rank 0: {root.get(key)!r})"
                                                    for key, value in other.items() if root.get(key) != value)
                       for rank, other in enumerate(gathered) if other != root]
        if differences:
            raise ValueError("distributed: the ranks must train the same model on the same data; "
                             + "; ".join(differences))

    def check_identical(self, values, step):
        """RuntimeError on every rank unless `values` (the parameters) are bitwise the same on
        every rank."""
        digest = hashlib.sha256(np.ascontiguousarray(values).view(np.uint8)).hexdigest()
        digests = self.comm.allgather(digest)
        if len(set(digests)) > 1:
            apart = [rank for rank, other in enumerate(digests) if other != digests[0]]
            raise RuntimeError(f"distributed: after step {step} the parameters of ranks {apart} differ from rank "
                               "0's; the ranks no longer train one model")

    def abort(self, error):
        """Prints this rank's error and ends every rank of the run (no rank is left waiting)."""
        sys.stderr.write(f"fastrnn.distributed: rank {self.rank} of {self.size} failed: "
                         f"{type(error).__name__}: {error}\n")
        sys.stderr.flush()
        self.comm.Abort(1)
