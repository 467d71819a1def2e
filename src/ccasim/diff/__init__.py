"""``ccasim diff``: run the same generated RMI sequences on two RMMs and report where they
differ, each class with the spec rule it concerns and a minimal reproducer.

- :mod:`ccasim.diff.steps`: host steps as data;
- :mod:`ccasim.diff.backends`: a ccasim profile, or an external RMM behind a C ABI;
- :mod:`ccasim.diff.generate`: the host that draws mostly valid sequences;
- :mod:`ccasim.diff.compare`: what is compared after each step;
- :mod:`ccasim.diff.campaign`: seeds, classes, shrinking, the report.
"""

from ccasim.diff.backends import ExternalRmm, ModelRmm, open_rmm
from ccasim.diff.campaign import Campaign, DiffClass, replay, shrink
from ccasim.diff.steps import Step

__all__ = [
    "Campaign",
    "DiffClass",
    "ExternalRmm",
    "ModelRmm",
    "Step",
    "open_rmm",
    "replay",
    "shrink",
]
