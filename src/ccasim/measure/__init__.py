"""Predicting a realm's measurements without running it (``ccasim measure``).

The calculator replays the construction a VMM and KVM perform (realm parameters, RIPAS over
guest RAM, the measured images in ascending IPA order, the boot REC, unmeasured pages) through
the very descriptor functions the RMM model uses (:mod:`ccasim.rmi.measurement`), so a
prediction and a built realm cannot disagree.
"""

from ccasim.measure.capabilities import Capabilities, CapabilityError
from ccasim.measure.realm import Blob, RealmImage, Region, RimCalculator, Step

__all__ = [
    "Blob",
    "Capabilities",
    "CapabilityError",
    "RealmImage",
    "Region",
    "RimCalculator",
    "Step",
]
