"""ccasim: an executable model of the Arm Confidential Compute Architecture realm stack.

>>> import ccasim
>>> m = ccasim.Machine()
>>> m.smc(ccasim.rmi.FID.VERSION, 0x10000)[0]
0
"""

from ccasim import rmi
from ccasim.el3.monitor import RmmPanic
from ccasim.hw.faults import ExternalAbort, GranuleProtectionFault, MemoryFault
from ccasim.machine import Machine
from ccasim.rmm.profile import RmmProfile

__version__ = "0.1.0"

__all__ = [
    "ExternalAbort", "GranuleProtectionFault", "Machine", "MemoryFault", "RmmPanic",
    "RmmProfile", "rmi",
]  # fmt: skip
