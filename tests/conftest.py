"""Prints the largest error each numerical check measured, so the margins stay visible."""

import support


def pytest_terminal_summary(terminalreporter):
    if not support.WORST_ERRORS:
        return
    terminalreporter.section("worst measured errors")
    for check, error in sorted(support.WORST_ERRORS.items()):
        terminalreporter.write_line(f"{check:<55} {error:.3g}")
