"""Session setup for the tests: kernels run with NaN-poisoned outputs and workspaces, and the
largest error each numerical check measured is printed, so the margins stay visible."""

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


def pytest_terminal_summary(terminalreporter):
    if not support.WORST_ERRORS:
        return
    terminalreporter.section("worst measured errors")
    for check, error in sorted(support.WORST_ERRORS.items()):
        terminalreporter.write_line(f"{check:<55} {error:.3g}")
