"""The Realm Management Interface ABI (chapter B4): what crosses between host and RMM.

FIDs, return codes, the encodings of RMI types and the in-memory structures, shared by every
host-side caller and by the RMM model, as both sides of a real system share the spec's
definitions. :class:`Rmi` is a typed host-side client over ``Machine.smc``.
"""

from ccasim.rmi.client import Rmi, RmiError, RmiResult
from ccasim.rmi.fid import FID, SMCCC_NOT_SUPPORTED
from ccasim.rmi.status import Status, decode_return_code, describe_return_code, return_code
from ccasim.rmi.structs import RealmParams, RecEnter, RecExit, RecParams
from ccasim.rmi.types import (
    FeatureRegister0,
    HashAlgorithm,
    InterfaceVersion,
    RecExitReason,
    RecMpidr,
    Ripas,
    RttEntryState,
)

__all__ = [
    "FID",
    "SMCCC_NOT_SUPPORTED",
    "FeatureRegister0",
    "HashAlgorithm",
    "InterfaceVersion",
    "RealmParams",
    "RecEnter",
    "RecExit",
    "RecExitReason",
    "RecMpidr",
    "RecParams",
    "Ripas",
    "Rmi",
    "RmiError",
    "RmiResult",
    "RttEntryState",
    "Status",
    "decode_return_code",
    "describe_return_code",
    "return_code",
]
