"""`fastrnn-demo NAME [options]` and `python -m fastrnn.demos NAME [options]`: runs one demo."""

import argparse
import importlib
import sys

from . import DEMOS


def summary(name):
    """The first line of a demo module's docstring, without its "name: " prefix."""
    module = importlib.import_module(f"{__package__}.{name}")
    return module.__doc__.splitlines()[0].split(": ", 1)[1]


def main(argv=None):
    listing = "demos:\n" + "\n".join(f"  {name:<10} {summary(name)}" for name in DEMOS)
    parser = argparse.ArgumentParser(
        prog="fastrnn-demo", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs a fastrnn demo: a short training run that prints (and with --out plots) what it learned.",
        epilog=f"{listing}\n\nEach demo has --quick, --seed and --out DIR; see `fastrnn-demo NAME --help`.")
    parser.add_argument("name", choices=DEMOS, metavar="NAME", help="the demo to run (listed below)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the demo's options (its --help lists them)")
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser.exit(2, parser.format_help())
    args = parser.parse_args(argv)
    importlib.import_module(f"{__package__}.{args.name}").main(args.options)
    return 0   # the console script exits with main()'s value; the demo's metrics are for in-process callers


if __name__ == "__main__":
    raise SystemExit(main())
