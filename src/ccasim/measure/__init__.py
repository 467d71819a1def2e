"""Predicting a realm's measurements without running it (``ccasim measure``).

A VMM's launch (:mod:`ccasim.vmm`: kvmtool's or QEMU's options, or a custom layout) is
replayed as KVM builds it (realm parameters, RIPAS over guest RAM, the measured images in
ascending IPA order, the boot REC, unmeasured pages) through the very descriptor functions the
RMM model uses (:mod:`ccasim.rmi.measurement`), so a prediction and a built realm cannot
disagree.
"""

from ccasim.measure.rim import RimCalculator, Step
from ccasim.vmm.capabilities import Capabilities, CapabilityError
from ccasim.vmm.errors import LaunchError
from ccasim.vmm.launch import Blob, Launch, Region

__all__ = [
    "Blob",
    "Capabilities",
    "CapabilityError",
    "Launch",
    "LaunchError",
    "Region",
    "RimCalculator",
    "Step",
]
