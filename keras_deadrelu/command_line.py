"""The ``keras-deadrelu`` command: ``demo``, ``report`` and ``check``.

``keras-deadrelu report LOGDIR`` summarises the monitor's TensorBoard logs,
``keras-deadrelu check MODEL.keras DATA.npy`` measures a saved model's dead
units on data, and ``keras-deadrelu demo`` runs the worked example. Each
subcommand lives in its own module; this one only dispatches.
"""

from __future__ import annotations

import argparse
import sys

import keras_deadrelu
from keras_deadrelu import check_model, report

PROG = "keras-deadrelu"


def build_parser() -> tuple[
    argparse.ArgumentParser, dict[str, argparse.ArgumentParser]
]:
    """The top-level parser and the subcommands' parsers by name; ``demo``
    takes its own arguments (see ``main``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find, show and fix dying ReLUs in Keras models.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {keras_deadrelu.__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # The demo module is imported only when it runs, so its arguments are
    # parsed by its own parser from whatever follows "demo".
    commands.add_parser(
        "demo",
        add_help=False,
        help="run the worked example (see 'keras-deadrelu demo --help')",
    )
    subcommands = {
        "report": commands.add_parser(
            "report",
            help="summarise DeadNeuronMonitor logs under a TensorBoard LOGDIR",
            description="Per run and site: final and peak dead %, the first "
            "window at or above the threshold, and the fixes applied.",
        ),
        "check": commands.add_parser(
            "check",
            help="measure the dead units of a saved .keras model on a .npy array",
            description="Runs the model over the data and prints each site's "
            "dead %. Bad inputs exit with code 2.",
        ),
    }
    report.add_arguments(subcommands["report"])
    check_model.add_arguments(subcommands["check"])
    return parser, subcommands


def _run_demo(demo_argv: list[str]) -> int:
    from keras_deadrelu import demo

    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo",
        description=(demo.__doc__ or "").strip().split("\n")[0].replace("``", ""),
    )
    demo.add_arguments(parser)
    return int(demo.run(parser.parse_args(demo_argv)) or 0)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line `argv` (default ``sys.argv[1:]``); returns the exit code.

    Argument errors return 2 (after argparse's usage message) instead of
    raising ``SystemExit``; ``--help`` and ``--version`` return 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subcommands = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command == "demo":
            return _run_demo(extra)
        if extra:  # with the subcommand's usage line
            subcommands[args.command].error(
                f"unrecognized arguments: {' '.join(extra)}"
            )
    except SystemExit as exit_:
        if isinstance(exit_.code, int):
            return exit_.code
        if exit_.code is not None:  # a message (the demo without scikit-learn)
            print(f"{PROG}: error: {exit_.code}", file=sys.stderr)
        return 2
    if args.command == "report":
        return report.run(args)
    return check_model.run(args)


if __name__ == "__main__":
    sys.exit(main())
