"""How many threads the kernels use: the default (the CPUs this process may actually run on),
FASTRNN_NUM_THREADS, and set_num_threads / get_num_threads.

A machine's core count is the wrong default on a shared machine: a process pinned to a few
cores (taskset, numactl, Slurm, several MPI ranks on a node) or a container whose CPU quota is
smaller than the host would otherwise start more threads than it has CPUs to run them.
"""

import math
import os
import sys
import warnings

from . import _core
from .base import positive_int


def get_num_threads():
    """Threads the kernels may use (default: FASTRNN_NUM_THREADS, else the CPUs this process may
    run on: its CPU affinity, capped by a cgroup CPU quota)."""
    return _core.get_num_threads()


def set_num_threads(threads):
    """Sets the number of threads the kernels may use (1 to 1024); results are identical for any
    count."""
    threads = positive_int(threads, "threads")
    if threads > _core.max_threads:
        raise ValueError(f"threads: expected 1 to {_core.max_threads}, got {threads}")
    _core.set_num_threads(threads)


def available_cpus(mountinfo="/proc/self/mountinfo", cgroup="/proc/self/cgroup"):
    """CPUs this process may run on: its affinity mask, capped by its cgroup's CPU quota rounded
    up (a quota of 1.5 CPUs keeps two threads busy 75% of the time)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(mountinfo, cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, min(cpus, _core.max_threads))


def cgroup_cpu_quota(mountinfo="/proc/self/mountinfo", cgroup="/proc/self/cgroup"):
    """The CPU quota (in CPUs) of this process's cgroup and its ancestors, the smallest, or None
    if none has one (or this is not Linux). cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us)."""
    try:
        with open(mountinfo) as file:
            mounts = [line.split() for line in file]
        with open(cgroup) as file:
            memberships = [line.rstrip("\n").split(":", 2) for line in file]
    except OSError:
        return None
    quotas = []
    for hierarchy, controllers, path in (entry for entry in memberships if len(entry) == 3):
        version = 2 if hierarchy == "0" else 1
        if version == 1 and "cpu" not in controllers.split(","):
            continue
        for directory in _cgroup_directories(mounts, version, path):
            quota = _read_quota(directory, version)
            if quota is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None


def _cgroup_directories(mounts, version, path):
    """The directories of cgroup `path` and its ancestors, up to the mount of its hierarchy.
    A mountinfo line: id parent major:minor root mount_point options [optional...] - fstype
    source super_options; `root` is the part of the hierarchy the mount shows (a container sees
    its own cgroup as /)."""
    for fields in mounts:
        if "-" not in fields:
            continue
        separator = fields.index("-")
        fstype, super_options = fields[separator + 1], fields[separator + 3:separator + 4]
        wanted = fstype == "cgroup2" if version == 2 else (
            fstype == "cgroup" and super_options and "cpu" in super_options[0].split(","))
        if not wanted:
            continue
        root, mount_point = fields[3], fields[4]
        relative = os.path.relpath(path, root)
        if relative.startswith(".."):
            continue   # this mount does not show the process's cgroup
        parts = [] if relative == "." else relative.split("/")
        return [os.path.join(mount_point, *parts[:depth]) for depth in range(len(parts), -1, -1)]
    return []


def _read_quota(directory, version):
    """The quota one cgroup directory sets, in CPUs, or None."""
    try:
        if version == 2:
            with open(os.path.join(directory, "cpu.max")) as file:
                quota, period = file.read().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        with open(os.path.join(directory, "cpu.cfs_quota_us")) as file:
            quota = int(file.read())
        with open(os.path.join(directory, "cpu.cfs_period_us")) as file:
            period = int(file.read())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def apply_defaults():
    """At import: FASTRNN_NUM_THREADS when set, as if passed to set_num_threads (a value that is
    not a thread count is ignored with a warning: a typo should not silently change the speed),
    else the CPUs this process may run on."""
    set_num_threads(available_cpus())
    text = os.environ.get("FASTRNN_NUM_THREADS")
    if text is None:
        return
    try:
        set_num_threads(int(text))
    except ValueError:
        warn_at_import(f"FASTRNN_NUM_THREADS={text!r} ignored: expected an integer from 1 to {_core.max_threads}; "
                       f"using {get_num_threads()} threads")


def warn_at_import(message):
    """A RuntimeWarning attributed to the user's `import fastrnn`, the first frame outside
    fastrnn, rather than to fastrnn's own code or <frozen importlib._bootstrap>. (warnings skips
    the import machinery's frames itself when it counts stacklevel.)"""
    frame, level = sys._getframe(1), 2   # stacklevel 2: the caller of this function
    while frame is not None and not frame.f_code.co_filename.startswith("<frozen importlib") and \
            frame.f_globals.get("__name__", "").partition(".")[0] == "fastrnn":
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RuntimeWarning, stacklevel=level)
