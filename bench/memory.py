"""Peak memory of one training step (forward + backward) of the large LSTM, per library, each
in a fresh process so nothing another library allocated or cached is counted.

`peak_training_memory(library, threads)` starts `python bench/memory.py LIBRARY --threads N`,
which builds the layer and its inputs, resets the kernel's resident-memory high-water mark
(VmHWM; `echo 5 > /proc/self/clear_refs`), runs one step and prints the rise of VmHWM over the
resident size before the step as JSON. A tiny warm-up step runs first so one-time library
set-up (thread pools, kernel selection) is not counted; the large layer's own first step is,
with every buffer it allocates.
"""

import argparse
import json
import subprocess
import sys


def status_kib(field):
    """A "VmRSS"/"VmHWM"-style field of /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak():
    """Resets VmHWM to the current VmRSS where the kernel allows it; True if it did."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return status_kib("VmHWM") <= status_kib("VmRSS")


def measure(library, threads):
    import fastrnn
    import models
    from cases import LARGE_LSTM

    fastrnn.set_num_threads(threads)
    if models.torch is not None:
        models.torch.set_num_threads(threads)
    model_class = models.LIBRARIES[library]
    warm_up_case = LARGE_LSTM.with_steps(2)
    model_class(warm_up_case, models.initial_parameters(warm_up_case)).run()
    model = model_class(LARGE_LSTM, models.initial_parameters(LARGE_LSTM))
    peak_was_reset = reset_peak()
    baseline = status_kib("VmRSS")
    peak_before = status_kib("VmHWM")
    model.run()
    peak = status_kib("VmHWM")
    return {"library": library, "baseline_mib": baseline / 1024, "peak_mib": peak / 1024,
            "increase_mib": (peak - baseline) / 1024, "peak_was_reset": peak_was_reset,
            # without a reset, a step that stayed below an earlier peak shows only that bound
            "upper_bound": not peak_was_reset and peak == peak_before}


def peak_training_memory(library, threads):
    """measure() in a fresh Python process."""
    completed = subprocess.run([sys.executable, __file__, library, "--threads", str(threads)],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"memory measurement for {library} failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", choices=["fastrnn", "torch"])
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    print(json.dumps(measure(arguments.library, arguments.threads)))
