"""The RMMs ``ccasim diff`` compares: a ccasim profile, or an external RMM behind a C ABI.

An RMM here is what a host sees of it: SMCs, Normal-world memory (reads and writes that may
fault), and two debug views a comparison needs, each granule's state and a realm's RIM. A
ccasim profile is :class:`ModelRmm`; any other implementation (a TF-RMM or Islet host build,
say) is a shared library exporting the functions of ``rmm_abi.h`` (beside this file, and in
docs/rmm-abi.md), loaded by :class:`ExternalRmm` with ctypes.

The physical address map is the Arm FVP's, as ``ccasim.Machine()`` has it: 2 GiB of DRAM at
0x8000_0000, delegable and in the Non-secure PAS at reset; the sequences ``ccasim diff``
generates use that DRAM and, for invalid arguments, addresses outside it.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Protocol

from ccasim import MemoryFault
from ccasim.diff.steps import GRANULE_STATES
from ccasim.machine import Machine, RmmPanic
from ccasim.rmm.profile import RmmProfile, profile

__all__ = ["ABI_HEADER", "ABI_VERSION", "ExternalRmm", "ModelRmm", "RmmUnderTest", "open_rmm"]

GRANULE = 4096
#: The C ABI's version (``ccasim_rmm_abi_version()`` must return it).
ABI_VERSION = 1
#: The C header of the ABI.
ABI_HEADER = Path(__file__).with_name("rmm_abi.h")


class RmmUnderTest(Protocol):
    """An RMM as ``ccasim diff`` drives it."""

    name: str

    def reset(self) -> None:
        """A fresh RMM and memory, as after boot."""

    def ns_write(self, pa: int, data: bytes) -> bool:
        """A Normal-world write; False if it faults."""

    def ns_read(self, pa: int) -> bytes | None:
        """The granule at ``pa`` read from the Normal world, or None if the read faults."""

    def smc(self, fid: int, args: tuple[int, ...]) -> tuple[int, ...] | str:
        """X0..X4 of an SMC from the Normal world; a string (why) if the RMM stopped."""

    def granule_state(self, pa: int) -> str:
        """The RMM's state of the granule at ``pa`` (a name of GRANULE_STATES)."""

    def rim(self, rd: int) -> bytes | None:
        """The RIM of the realm whose RD is at ``rd``, or None if there is none."""


class ModelRmm:
    """A ccasim machine with the RMM of ``rmm_profile`` (a name or an RmmProfile)."""

    def __init__(self, rmm_profile: str | RmmProfile = "spec") -> None:
        self.profile = profile(rmm_profile)
        self.name = self.profile.name
        self.machine = Machine(rmm_profile=self.profile)

    def reset(self) -> None:
        self.machine = Machine(rmm_profile=self.profile)

    def ns_write(self, pa: int, data: bytes) -> bool:
        try:
            self.machine.ns_write(pa, data)
        except MemoryFault:  # a granule protection fault or an external abort
            return False
        return True

    def ns_read(self, pa: int) -> bytes | None:
        try:
            return self.machine.ns_read(pa & ~(GRANULE - 1), GRANULE)
        except MemoryFault:
            return None

    def smc(self, fid: int, args: tuple[int, ...]) -> tuple[int, ...] | str:
        try:
            return self.machine.smc(fid, *args)
        except RmmPanic as panic:
            return panic.reason

    def granule_state(self, pa: int) -> str:
        return self.machine.granule_state(pa)

    def rim(self, rd: int) -> bytes | None:
        try:
            return self.machine.realm_measurements(rd)[0]
        except ValueError:
            return None


class ExternalRmm:
    """An RMM in a shared library exporting the ``ccasim_rmm_*`` functions of rmm_abi.h."""

    def __init__(self, path: str) -> None:
        try:
            lib = ctypes.CDLL(str(Path(path).resolve()))
        except OSError as e:
            raise ValueError(f"cannot load the RMM library {path}: {e}") from None
        u64, p = ctypes.c_uint64, ctypes.c_void_p
        try:
            signatures = {
                "ccasim_rmm_abi_version": (ctypes.c_uint32, []),
                "ccasim_rmm_reset": (None, []),
                "ccasim_rmm_smc": (ctypes.c_int, [ctypes.POINTER(u64), ctypes.POINTER(u64)]),
                "ccasim_rmm_ns_read": (ctypes.c_int, [u64, p, u64]),
                "ccasim_rmm_ns_write": (ctypes.c_int, [u64, p, u64]),
                "ccasim_rmm_granule_state": (ctypes.c_int, [u64]),
                "ccasim_rmm_rim": (ctypes.c_int, [u64, ctypes.c_char_p]),
            }
            for name, (restype, argtypes) in signatures.items():
                function = getattr(lib, name)
                function.restype, function.argtypes = restype, argtypes
        except AttributeError as e:
            raise ValueError(f"{path} is not an RMM for ccasim diff: {e}") from None
        version = lib.ccasim_rmm_abi_version()
        if version != ABI_VERSION:
            raise ValueError(f"{path} implements ABI version {version}, not {ABI_VERSION}")
        self.lib = lib
        self.name = Path(path).name
        self.stopped: str | None = None

    def reset(self) -> None:
        self.lib.ccasim_rmm_reset()
        self.stopped = None

    def ns_write(self, pa: int, data: bytes) -> bool:
        return self.lib.ccasim_rmm_ns_write(pa, data, len(data)) == 0

    def ns_read(self, pa: int) -> bytes | None:
        buffer = ctypes.create_string_buffer(GRANULE)
        if self.lib.ccasim_rmm_ns_read(pa & ~(GRANULE - 1), buffer, GRANULE) != 0:
            return None
        return buffer.raw

    def smc(self, fid: int, args: tuple[int, ...]) -> tuple[int, ...] | str:
        if self.stopped is not None:
            return self.stopped
        regs = (ctypes.c_uint64 * 8)(fid, *(list(args) + [0] * 7)[:7])
        out = (ctypes.c_uint64 * 5)()
        if self.lib.ccasim_rmm_smc(regs, out) != 0:
            self.stopped = "the RMM stopped (ccasim_rmm_smc returned non-zero)"
            return self.stopped
        return tuple(out)

    def granule_state(self, pa: int) -> str:
        state = self.lib.ccasim_rmm_granule_state(pa)
        return GRANULE_STATES[state] if 0 <= state < len(GRANULE_STATES) else f"state {state}"

    def rim(self, rd: int) -> bytes | None:
        buffer = ctypes.create_string_buffer(64)
        size = self.lib.ccasim_rmm_rim(rd, buffer)
        return buffer.raw[:size] if size > 0 else None


def open_rmm(spec: str) -> RmmUnderTest:
    """The RMM ``spec`` names: a ccasim profile (``spec``, ``tfrmm-1.0``, with ``+quirk``s)
    or the path of a shared library (containing a ``/`` or ending in ``.so``)."""
    if "/" in spec or spec.endswith(".so"):
        return ExternalRmm(spec)
    name, *quirks = spec.split("+")
    return ModelRmm(profile(name, *quirks))
