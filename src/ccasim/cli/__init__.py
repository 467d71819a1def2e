"""The ``ccasim`` command line.

Every failure the user can cause (a bad option, a missing or malformed file) ends with one
line on standard error naming the problem and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import os
import sys

import click

from ccasim import __version__
from ccasim.cli.diff import diff
from ccasim.cli.guest import guest
from ccasim.cli.measure import measure
from ccasim.cli.run import run
from ccasim.cli.token import token
from ccasim.cli.trace import trace


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ccasim")
def cli() -> None:
    """ccasim: an executable model of the Arm CCA realm stack (RMM 1.0)."""


cli.add_command(measure)
cli.add_command(token)
cli.add_command(run)
cli.add_command(guest)
cli.add_command(trace)
cli.add_command(diff)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    try:
        result = cli.main(args=argv, prog_name="ccasim", standalone_mode=False)
        sys.stdout.flush()  # so that a write error surfaces here, not at exit
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as cat does
        _silence_stdout()
        return 141  # 128 + SIGPIPE
    except click.ClickException as e:
        click.echo(f"ccasim: error: {one_line(e.format_message())}", err=True)
        return e.exit_code
    except click.Abort:
        click.echo("ccasim: aborted", err=True)
        return 1
    except OSError as e:  # a file click opened, or standard output (e.g. a full disk)
        _silence_stdout()
        where = e.filename or "standard output"
        click.echo(f"ccasim: error: cannot write {where}: {e.strerror or e}", err=True)
        return 1
    except Exception as e:  # a bug in ccasim: still one line, unless asked for the traceback
        if os.environ.get("CCASIM_DEBUG"):
            raise
        click.echo(
            f"ccasim: internal error: {type(e).__name__}: {one_line(str(e))} (a bug: please"
            " report it; CCASIM_DEBUG=1 shows the traceback)",
            err=True,
        )
        return 70  # EX_SOFTWARE
    return result if isinstance(result, int) else 0


def one_line(text: str) -> str:
    """``text`` on one line: control characters (from a user's arguments, say) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _silence_stdout() -> None:
    """Point standard output at /dev/null so that the interpreter's final flush of what
    could not be written raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests)
        pass


def entry_point() -> None:
    sys.exit(main())
