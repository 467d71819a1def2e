"""``python -m ccasim``: the command line."""

from ccasim.cli import entry_point

entry_point()
