"""Threads: kernel results bitwise identical for any thread count and across repeated runs, the
thread-count API, the environment variables read at start-up (FASTRNN_NUM_THREADS,
FASTRNN_ISA), and one layer used by two calls at once (from two threads, or from Python code a
call runs), which raises RuntimeError and never mixes the calls' shapes or buffers.
"""

import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastrnn
from support import CELL_IDS, CELLS, ISAS, Case, NativeRun, assert_close, make_data, reference_run, result_dict


# Each shape does >= 50e3 flops per time step, so the kernels use every thread they may.
# "wide" splits each step's hidden-unit panels between the threads; "tall" has too few panels
# (H = 9) for that and splits the batch rows instead, in partial row tiles; "narrow" and
# "single" have the batches of 2 and 1 that take the dot-product path forward and one- and
# two-row tiles (split partial sums) backward.
SHAPES = {
    "wide": dict(steps=5, batch=32, input_size=20, hidden_size=64, num_layers=2, bidirectional=True,
                 lengths=(5, 3, 1, 5) * 8),
    "tall": dict(steps=3, batch=157, input_size=7, hidden_size=9, num_layers=2, bidirectional=True),
    "narrow": dict(steps=4, batch=2, input_size=5, hidden_size=130, num_layers=2, lengths=(4, 2)),
    "single": dict(steps=3, batch=1, input_size=11, hidden_size=130, num_layers=2, bidirectional=True),
}


def all_results(run):
    """Inference forward, training forward and backward, and the same with dropout (whose
    masks must not depend on the thread count either), as one dict."""
    results = {f"inference {name}": value for name, value in result_dict(
        run.case, *run.forward(training=False)).items()}
    results.update(result_dict(run.case, *run.forward(training=True), *run.backward()))
    forward = run.forward(training=True, dropout=0.3, seed=5)
    results.update({f"dropout {name}": value for name, value in result_dict(
        run.case, *forward, *run.backward()).items()})
    return results


@pytest.mark.parametrize("mode, linear_before_reset", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_results_identical_for_any_thread_count(restore_threads, mode, linear_before_reset, isa, dtype, shape):
    case = Case(mode, linear_before_reset=linear_before_reset, **SHAPES[shape])
    data = make_data(case).rounded(dtype)
    run = NativeRun(case, data, dtype, isa)
    results = []
    for threads in (1, 2, 3, 2):   # 2 twice: repeated runs agree too
        fastrnn.set_num_threads(threads)
        results.append((threads, all_results(run)))
    single = results[0][1]
    for threads, result in results[1:]:
        for name, value in single.items():
            np.testing.assert_array_equal(result[name], value, err_msg=f"{name}, {threads} threads")
    # and they are right
    expected_inference, expected = reference_run(case, data)
    threaded = results[1][1]
    assert_close({name: threaded[name] for name in expected}, expected, dtype,
                 f"{np.dtype(dtype).name} threaded vs reference")
    assert_close({name: threaded[f"inference {name}"] for name in expected_inference}, expected_inference, dtype,
                 f"{np.dtype(dtype).name} threaded vs reference")


@pytest.fixture
def busy_core():
    """Another process spinning on one core for the test's duration: workers get descheduled
    in the middle of their items, and stale ones wake up in later phases and jobs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    spinner.kill()
    spinner.wait()


@pytest.mark.parametrize("threads", [2, 5])
def test_results_identical_under_load_and_oversubscription(restore_threads, busy_core, threads):
    """Many short calls (the generation shape's one-step forwards among them) while the pool
    has more threads than free cores: every result equals the single-thread one."""
    cases = [Case("gru", steps=1, batch=1, input_size=7, hidden_size=130, num_layers=2),
             Case("lstm", steps=3, batch=24, input_size=5, hidden_size=70, num_layers=2, bidirectional=True)]
    runs = [NativeRun(case, make_data(case).rounded(np.float64), np.float64, "auto") for case in cases]
    fastrnn.set_num_threads(1)
    expected = [all_results(run) for run in runs]
    fastrnn.set_num_threads(threads)
    for _ in range(40):
        for run, single in zip(runs, expected):
            result = all_results(run)
            for name, value in single.items():
                np.testing.assert_array_equal(result[name], value, err_msg=name)


def test_pool_keeps_its_contract_under_load(busy_core):
    """Random jobs (phases of 0 to 39 items, some long enough to be descheduled in) on 1 to 6
    threads, from two host threads at once: every item runs once, on a free thread index below
    the call's count, after the whole phase before it."""
    results = []
    hosts = [threading.Thread(target=lambda seed=seed: results.append(fastrnn._core._check_pool(2000, 6, seed)))
             for seed in (1, 2)]
    for host in hosts:
        host.start()
    for host in hosts:
        host.join()
    assert len(results) == 2
    for result in results:
        assert result["items"] > 10000 and result["violations"] == 0


def test_layers_in_concurrent_python_threads(restore_threads):
    """Kernel calls from two Python threads (the GIL is released) share the worker pool one at a
    time: each gets its own right result; one layer used by both at once raises."""
    fastrnn.set_num_threads(2)
    rng = np.random.default_rng(0)
    layers = [fastrnn.GRU(20, 64, num_layers=2, bidirectional=True, dtype="float64", seed=i) for i in range(2)]
    inputs = [rng.normal(size=(5, 32, 20)) for _ in layers]
    expected = [layer(x)[0] for layer, x in zip(layers, inputs)]
    mismatches, clashes = [], []

    def work(index, layer_index):
        for _ in range(20):
            try:
                y = layers[layer_index](inputs[layer_index])[0]
            except RuntimeError as error:
                clashes.append(str(error))
                continue
            if not np.array_equal(y, expected[layer_index]):
                mismatches.append(index)

    for layer_indices in ([0, 1], [0, 0]):
        workers = [threading.Thread(target=work, args=(index, layer_index))
                   for index, layer_index in enumerate(layer_indices)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not mismatches
    assert all("already running" in clash for clash in clashes)


class ReentrantPair(tuple):
    """An LSTM state (h, c) whose item access first runs `action`, another call on the same
    layer, as any sequence's __getitem__ may; `outcomes` records what each such call did."""

    def __new__(cls, parts, action):
        pair = super().__new__(cls, parts)
        pair.action, pair.outcomes = action, []
        return pair

    def __getitem__(self, index):
        self.outcomes.append(outcome(self.action))
        return super().__getitem__(index)


class ReentrantLengths:
    """Lengths that NumPy reads item by item, each access first running `action`."""

    def __init__(self, lengths, action):
        self.lengths, self.action, self.outcomes = list(lengths), action, []

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, index):
        self.outcomes.append(outcome(self.action))
        return self.lengths[index]


def outcome(action):
    try:
        action()
    except RuntimeError as error:
        return str(error)
    return "ran"


@pytest.mark.parametrize("inner", ["forward_smaller_batch", "backward"])
@pytest.mark.parametrize("argument", ["state", "dstate"])
def test_a_call_refuses_calls_its_arguments_make_on_the_same_layer(argument, inner):
    """Reading an argument runs another call on the same layer: that call raises RuntimeError,
    and the outer call gives the results it gives alone. (The outer backward used to read the
    forward's shape before the dstate sequence ran a smaller forward, then read the smaller
    input as the bigger one; or used the input a backward in between had released.)"""
    rng = np.random.default_rng(0)
    steps, batch, features, hidden, layers = 6, 5, 3, 4, 2
    x, dy = rng.normal(size=(steps, batch, features)), rng.normal(size=(steps, batch, hidden))
    state, dstate = ([rng.normal(size=(layers, batch, hidden)) for _ in range(2)] for _ in range(2))
    lengths = [6, 2, 5, 1, 6]

    def run(layer, wrap):
        layer(x)   # a forward for an inner backward to differentiate
        y, (hn, cn) = layer(x, wrap("state", tuple(state)), lengths=lengths)
        dx, (dh0, dc0) = layer.backward(dy, wrap("dstate", tuple(dstate)))
        return [y, hn, cn, dx, dh0, dc0, *layer.grads.values()]

    def plain(name, value):
        return value

    expected = run(fastrnn.LSTM(features, hidden, num_layers=layers, seed=0), plain)
    layer = fastrnn.LSTM(features, hidden, num_layers=layers, seed=0)
    inner_call = {"forward_smaller_batch": lambda: layer(x[:, :1]), "backward": lambda: layer.backward(dy)}[inner]
    reentrant = []

    def wrap(name, value):
        if name != argument:
            return value
        reentrant.append(ReentrantPair(value, inner_call))
        return reentrant[-1]

    results = run(layer, wrap)
    outcomes = reentrant[0].outcomes
    assert outcomes and all("already running" in result for result in outcomes), outcomes
    for actual, wanted in zip(results, expected):
        np.testing.assert_array_equal(actual, wanted)


@pytest.mark.parametrize("inner", ["forward_smaller_batch", "backward"])
def test_the_native_call_refuses_calls_its_lengths_make_on_the_same_stack(inner):
    """The layers convert lengths in Python before their native call (base.sequence_lengths), so
    there a reentrant call runs before the native one starts; the native call, which converts
    them again for any caller, must refuse one made while it does."""
    rng = np.random.default_rng(0)
    x, dy = rng.normal(size=(6, 5, 3)), rng.normal(size=(6, 5, 4))
    lengths = [6, 2, 5, 1, 6]
    layer = fastrnn.LSTM(3, 4, num_layers=2, dtype="float64", seed=0)

    def native_forward(given_lengths):
        return layer._native.forward(layer._parameters.values, x, None, given_lengths, True, False, 0.0, 0)

    expected_y, _ = native_forward(np.array(lengths))
    layer(x)   # a forward for an inner backward to differentiate
    inner_call = {"forward_smaller_batch": lambda: layer(x[:, :1]), "backward": lambda: layer.backward(dy)}[inner]
    reentrant = ReentrantLengths(lengths, inner_call)
    y, _ = native_forward(reentrant)
    assert reentrant.outcomes and all("already running" in result for result in reentrant.outcomes), \
        reentrant.outcomes
    np.testing.assert_array_equal(y, expected_y)


def test_one_layer_from_two_threads_raises_and_never_mixes_calls(restore_threads):
    """Two threads hammer one layer with forward and backward: one at a big batch, the other at a
    batch of one, started each time the big thread begins a backward. That backward's dy is
    float64 for a float32 layer: its conversion releases the GIL for long enough for a whole
    forward and backward of the small thread. (They used to run, and the big backward then read
    the small input, or a released one, as its own.) Every call either gives the results it gives
    alone, or raises RuntimeError "already running" (the other thread's call is running), or
    ValueError when the other thread's forward or backward came between this thread's forward
    and backward (a layer keeps one forward to differentiate)."""
    fastrnn.set_num_threads(2)
    rng = np.random.default_rng(0)
    layer = fastrnn.LSTM(4, 8, seed=0)
    shapes = [(100, 500), (1, 1)]   # (steps, batch) of the big and the small thread
    inputs = [rng.normal(size=(steps, batch, 4)).astype(np.float32) for steps, batch in shapes]
    gradients = [rng.normal(size=(steps, batch, 8)) for steps, batch in shapes]
    expected = []
    for x, dy in zip(inputs, gradients):
        y, _ = layer(x)
        expected.append((y, layer.backward(dy)[0]))
    mismatches, refusals = [], []
    big_backward, big_done = threading.Event(), threading.Event()

    def attempt(index, name, call):
        try:
            result = call()
        except RuntimeError as error:
            refusals.append(str(error))
            return False
        except ValueError as error:
            if not re.match(r"dy: expected shape .* \(the forward's output\)|backward: no training-mode forward",
                            str(error)):
                raise
            return False
        wanted = expected[index][0 if name == "y" else 1]
        if not np.array_equal(result, wanted):
            mismatches.append(f"thread {index}: {name}")
        return True

    def forward_and_backward(index):
        if attempt(index, "y", lambda: layer(inputs[index])[0]):
            if index == 0:
                big_backward.set()
            attempt(index, "dx", lambda: layer.backward(gradients[index])[0])

    def big():
        try:
            for _ in range(20):
                forward_and_backward(0)
        finally:
            big_done.set()
            big_backward.set()

    def small():
        while not big_done.is_set():
            big_backward.wait()
            big_backward.clear()
            forward_and_backward(1)

    workers = [threading.Thread(target=work) for work in (big, small)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not mismatches, mismatches
    assert all("already running" in refusal for refusal in refusals), refusals


def test_thread_count_api(restore_threads):
    for threads in (1, 3, 2):
        fastrnn.set_num_threads(threads)
        assert fastrnn.get_num_threads() == threads
    for bad in (0, -2, fastrnn._core.max_threads + 1, 2**40):
        with pytest.raises(ValueError, match="threads"):
            fastrnn.set_num_threads(bad)
    for bad in ("2", 2.5, None, True):
        with pytest.raises(TypeError, match="threads"):
            fastrnn.set_num_threads(bad)
    assert fastrnn.get_num_threads() == 2
    fastrnn.set_num_threads(np.int64(fastrnn._core.max_threads))
    assert fastrnn.get_num_threads() == fastrnn._core.max_threads


def start_python(code, **environment):
    """`code` run in a fresh interpreter whose environment has these FASTRNN_* variables (and
    no others): the completed process."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FASTRNN_")}
    env.update(environment)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=True)


def run_python(code, **environment):
    """The words `code` prints, run as start_python runs it."""
    return start_python(code, **environment).stdout.split()


STARTUP = "import fastrnn; print(fastrnn.get_num_threads(), fastrnn.kernel_isa(), fastrnn.LSTM(2, 3)._native.isa)"


def test_environment_sets_defaults():
    best = fastrnn.available_isas()[0]
    assert run_python(STARTUP, FASTRNN_NUM_THREADS="1") == ["1", best, best]
    assert run_python(STARTUP, FASTRNN_NUM_THREADS="3", FASTRNN_ISA="portable") == ["3", "portable", "portable"]
    threads, isa, _ = run_python(STARTUP)
    assert int(threads) == fastrnn._threads.available_cpus() and isa == best


@pytest.mark.parametrize("name", fastrnn.available_isas())
def test_environment_selects_an_available_isa(name):
    assert run_python(STARTUP, FASTRNN_ISA=name)[1:] == [name, name]


def test_available_isas_are_the_runnable_variants_best_first():
    variants = fastrnn._core.isa_variants()
    assert fastrnn.available_isas() == [name for name, available, tests_only in variants
                                        if available and not tests_only]
    assert fastrnn.available_isas()[-1] == "portable" and fastrnn.kernel_isa() == fastrnn.available_isas()[0]


UNRUNNABLE = [name for name, available, tests_only in fastrnn._core.isa_variants() if not available and not tests_only]


@pytest.mark.parametrize("value", ["Portable", "avx-512", "", "avx512-emulated", *UNRUNNABLE])
def test_environment_isa_not_runnable_warns(value):
    code = "import fastrnn; print(fastrnn.kernel_isa())"
    completed = start_python(code, FASTRNN_ISA=value)
    assert completed.stdout.split() == [fastrnn.available_isas()[0]]
    reason = "this CPU cannot run" if value in UNRUNNABLE else "expected one of 'avx512', 'avx2', 'portable'"
    # Attributed to the user's import (here `python -c`), not to <frozen importlib._bootstrap>.
    assert completed.stderr.startswith(f"<string>:1: RuntimeWarning: FASTRNN_ISA='{value}' ignored ({reason}")


@pytest.mark.parametrize("text", ["abc", "0", "-3", "1.5", "5abc", "99999999999", ""])
def test_environment_thread_count_not_a_count_warns(text):
    code = "import fastrnn; print(fastrnn.get_num_threads())"
    completed = start_python(code, FASTRNN_NUM_THREADS=text)
    assert completed.stdout.split() == run_python(code)
    assert completed.stderr.startswith("<string>:1: RuntimeWarning: FASTRNN_NUM_THREADS=") and \
        "ignored" in completed.stderr


def test_default_threads_follow_cpu_affinity():
    """A process pinned to one CPU (taskset, an MPI rank, a Slurm task) gets one thread."""
    pinned = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " + STARTUP
    assert run_python(pinned)[0] == "1"
    allowed = len(os.sched_getaffinity(0))
    assert run_python(STARTUP)[0] == str(min(allowed, fastrnn._threads.available_cpus()))


def write_cgroup_tree(root, version, quotas):
    """A fake cgroup filesystem under `root`: the process in cgroup /a/b, `quotas` {path:
    (quota, period)} with quota None for no limit. Returns (mountinfo, cgroup) file paths."""
    mount = root / "mnt"
    for path, (quota, period) in quotas.items():
        directory = mount / path.strip("/")
        directory.mkdir(parents=True, exist_ok=True)
        if version == 2:
            (directory / "cpu.max").write_text(f"{'max' if quota is None else quota} {period}\n")
        else:
            (directory / "cpu.cfs_quota_us").write_text(f"{-1 if quota is None else quota}\n")
            (directory / "cpu.cfs_period_us").write_text(f"{period}\n")
    fstype, options = ("cgroup2", "rw") if version == 2 else ("cgroup", "rw,cpu,cpuacct")
    mountinfo = root / "mountinfo"
    mountinfo.write_text(f"31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                         f"32 31 0:29 / {mount} rw,relatime shared:9 - {fstype} {fstype} {options}\n")
    cgroup = root / "cgroup"
    cgroup.write_text("0::/a/b\n" if version == 2 else "5:memory:/a/b\n3:cpu,cpuacct:/a/b\n")
    return str(mountinfo), str(cgroup)


@pytest.mark.parametrize("version", [1, 2])
def test_cgroup_quota_is_the_smallest_on_the_path(tmp_path, version):
    quota = fastrnn._threads.cgroup_cpu_quota
    tree = {"/": (None, 100000), "/a": (250000, 100000), "/a/b": (None, 100000)}
    assert quota(*write_cgroup_tree(tmp_path / "parent", version, tree)) == 2.5
    tree["/a/b"] = (150000, 100000)
    assert quota(*write_cgroup_tree(tmp_path / "own", version, tree)) == 1.5
    unlimited = {path: (None, 100000) for path in tree}
    assert quota(*write_cgroup_tree(tmp_path / "none", version, unlimited)) is None
    assert quota(str(tmp_path / "missing"), str(tmp_path / "missing")) is None


def test_cgroup_quota_caps_the_default_threads(tmp_path):
    files = write_cgroup_tree(tmp_path, 2, {"/a/b": (50000, 100000)})
    assert fastrnn._threads.available_cpus(*files) == 1   # half a CPU: one thread
    files = write_cgroup_tree(tmp_path / "wide", 2, {"/a/b": (64 * 100000, 100000)})
    assert fastrnn._threads.available_cpus(*files) == len(os.sched_getaffinity(0))


def test_default_threads_in_a_cgroup_with_a_quota():
    """A real cgroup v1 "cpu" hierarchy, where this machine lets us make one: a process limited
    to one CPU's time gets one thread."""
    hierarchy = "/sys/fs/cgroup/cpu"
    if len(os.sched_getaffinity(0)) < 2 or not os.access(hierarchy, os.W_OK):
        pytest.skip("needs a writable cgroup v1 cpu hierarchy and 2 CPUs")
    group = os.path.join(hierarchy, f"fastrnn_test_{os.getpid()}")
    os.mkdir(group)
    try:
        with open(os.path.join(group, "cpu.cfs_period_us")) as file:
            period = int(file.read())
        with open(os.path.join(group, "cpu.cfs_quota_us"), "w") as file:
            file.write(str(period))
        code = f"import os; open('{group}/cgroup.procs', 'w').write(str(os.getpid())); " + STARTUP
        assert run_python(code)[0] == "1"
    finally:
        os.rmdir(group)
