"""Session setup for the tests: kernels run with NaN-poisoned outputs and workspaces, and the
largest error each numerical check measured is printed, so the margins stay visible. The
run_apart fixture runs code in a separate interpreter with a timeout."""

import subprocess
import sys

import pytest

import fastrnn
import support


@pytest.fixture(autouse=True, scope="session")
def poison_kernel_buffers():
    # An element a kernel forgets to write (or reads before writing) turns into NaN and fails
    # the comparison, instead of passing on memory that happened to hold the right value.
    fastrnn._core._set_poison(True)
    yield
    fastrnn._core._set_poison(False)


@pytest.fixture
def run_apart():
    """run_apart(code) -> what `code` printed, run in a fresh interpreter that is killed, failing
    the test, after 30 s: for checks that take milliseconds, and minutes if they regress."""
    def run(code):
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout
    return run


def pytest_terminal_summary(terminalreporter):
    if not support.WORST_ERRORS:
        return
    terminalreporter.section("worst measured errors")
    for check, error in sorted(support.WORST_ERRORS.items()):
        terminalreporter.write_line(f"{check:<55} {error:.3g}")


@pytest.fixture
def restore_threads():
    """fastrnn's thread count as it was before the test."""
    threads = fastrnn.get_num_threads()
    yield
    fastrnn.set_num_threads(threads)
