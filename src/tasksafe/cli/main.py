"""Entry point. Each subcommand parses, calls the library, prints. An expected user error
(`UserError`) prints one line and exits 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import os
import signal
import sys
import warnings

import click

from tasksafe import __version__
from tasksafe.cli.output import printable
from tasksafe.errors import UserError


class TasksafeGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"tasksafe: error: {printable(str(err))}", err=True)
            sys.exit(2)


def _exit_on_signal(signum: int, _frame) -> None:
    """SIGTERM and SIGHUP end the command like Ctrl-C does: by an exception, so every
    `atomic_files` block removes its temporary files on the way out."""
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)


def quiet_libraries() -> None:
    """tasksafe's own progress bars and messages only: the libraries' bars (dataset maps,
    weight loading) and their deprecation warnings are noise to a user of the CLI. Set
    TASKSAFE_VERBOSE=1 to see them (before the libraries are imported, which is lazy)."""
    if os.environ.get("TASKSAFE_VERBOSE"):
        return
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)


@click.group(cls=TasksafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tasksafe")
def cli() -> None:
    """Keep task-specific fine-tuning of chat models safe.

    Build task datasets with benign or malicious prompting strategies, audit a user's
    dataset, protect it with safety examples in its own format, fine-tune, and evaluate
    task accuracy, attack success rate and over-refusal. Datasets are read from the mirror
    in TASKSAFE_DATA_DIR.
    """


def _register_commands() -> None:
    from tasksafe.cli.align import align
    from tasksafe.cli.audit import audit
    from tasksafe.cli.build import build
    from tasksafe.cli.data import data
    from tasksafe.cli.evaluate import evaluate
    from tasksafe.cli.finetune import finetune
    from tasksafe.cli.judge import judge
    from tasksafe.cli.plugins import plugins
    from tasksafe.cli.protect import protect
    from tasksafe.cli.report import report
    from tasksafe.cli.results import results
    from tasksafe.cli.run import run
    from tasksafe.cli.safelora import safelora
    from tasksafe.cli.serve import keys, serve

    for command in (data, build, audit, protect, align, finetune, safelora, evaluate, judge, run, report, results,
                    serve, keys, plugins):
        cli.add_command(command)


_register_commands()


def main() -> None:
    install_signal_handlers()
    quiet_libraries()
    cli(prog_name="tasksafe")


if __name__ == "__main__":
    main()
