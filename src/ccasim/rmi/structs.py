"""In-memory RMI structures (B4.4.12 RmiRealmParams, B4.4.19 RmiRecParams, B4.4.20 RmiRecRun).

Each is a 4 KiB little-endian structure that the host writes into a Non-secure granule and
passes to the RMM by physical address. ``pack`` gives the exact bytes, ``unpack`` reads them back;
bytes that no member covers are SBZ (written as zero, ignored on read).
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import ClassVar

from ccasim.rmi.types import HashAlgorithm


def member(offset: int, fmt: str, count: int = 1, default=0):
    """A member at byte ``offset``: ``fmt`` is a :mod:`struct` code, ``count`` > 1 an array."""
    meta = {"offset": offset, "fmt": fmt, "count": count}
    if count > 1:
        return dataclasses.field(default_factory=lambda: [default] * count, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class AbiStruct:
    """Mixin: pack and unpack a dataclass at the byte offsets its members declare.

    The members compile to one :class:`struct.Struct` per class (with pad bytes between them),
    so packing or unpacking a structure is a single call.
    """

    SIZE: ClassVar[int] = 4096
    _codecs: ClassVar[dict[type, tuple[struct.Struct, list[tuple[str, int, bool]]]]] = {}

    @classmethod
    def _codec(cls) -> tuple[struct.Struct, list[tuple[str, int, bool]]]:
        codec = AbiStruct._codecs.get(cls)
        if codec is None:
            fmt, pos, layout = "<", 0, []
            members = sorted(dataclasses.fields(cls), key=lambda f: f.metadata["offset"])  # type: ignore[arg-type]
            for f in members:
                m = f.metadata
                code = m["fmt"] if m["fmt"].endswith("s") else f"{m['count']}{m['fmt']}"
                if m["offset"] < pos:
                    raise TypeError(f"{cls.__name__}.{f.name} overlaps the member before it")
                fmt += f"{m['offset'] - pos}x{code}"
                pos = m["offset"] + struct.calcsize("<" + code)
                layout.append((f.name, m["count"], m["fmt"].endswith("s")))
            fmt += f"{cls.SIZE - pos}x"
            codec = AbiStruct._codecs[cls] = (struct.Struct(fmt), layout)
        return codec

    def pack(self) -> bytes:
        codec, layout = self._codec()
        values: list[object] = []
        for name, count, is_bytes in layout:
            value = getattr(self, name)
            if is_bytes:
                values.append(bytes(value))
            elif count > 1:
                if len(value) != count:
                    raise ValueError(f"{name} needs {count} values, got {len(value)}")
                values.extend(value)
            else:
                values.append(value)
        return codec.pack(*values)

    def pack_into(self, buf: bytearray, base: int) -> None:
        buf[base : base + self.SIZE] = self.pack()

    @classmethod
    def unpack(cls, data: bytes, base: int = 0):
        codec, layout = cls._codec()
        values = codec.unpack_from(data, base)
        kwargs, i = {}, 0
        for name, count, is_bytes in layout:
            if count > 1 and not is_bytes:
                kwargs[name] = list(values[i : i + count])
                i += count
            else:
                kwargs[name] = values[i]
                i += 1
        return cls(**kwargs)


@dataclass
class RealmParams(AbiStruct):
    """RmiRealmParams (B4.4.12): the host's request to RMI_REALM_CREATE."""

    flags: int = member(0x0, "Q")
    s2sz: int = member(0x8, "B")
    sve_vl: int = member(0x10, "B")
    num_bps: int = member(0x18, "B")
    num_wps: int = member(0x20, "B")
    pmu_num_ctrs: int = member(0x28, "B")
    hash_algo: int = member(0x30, "B", default=HashAlgorithm.SHA_256)
    rpv: bytes = member(0x400, "64s", default=bytes(64))
    vmid: int = member(0x800, "H")
    rtt_base: int = member(0x808, "Q")
    rtt_level_start: int = member(0x810, "q")
    rtt_num_start: int = member(0x818, "I")


@dataclass
class RecParams(AbiStruct):
    """RmiRecParams (B4.4.19): the host's request to RMI_REC_CREATE."""

    flags: int = member(0x0, "Q")
    mpidr: int = member(0x100, "Q")
    pc: int = member(0x200, "Q")
    gprs: list[int] = member(0x300, "Q", 8)
    num_aux: int = member(0x800, "Q")
    aux: list[int] = member(0x808, "Q", 16)


@dataclass
class RecEnter(AbiStruct):
    """RmiRecEnter (B4.4.14): the first 2 KiB of RmiRecRun, written by the host."""

    SIZE: ClassVar[int] = 0x800

    flags: int = member(0x0, "Q")
    gprs: list[int] = member(0x200, "Q", 31)
    gicv3_hcr: int = member(0x300, "Q")
    gicv3_lrs: list[int] = member(0x308, "Q", 16)


@dataclass
class RecExit(AbiStruct):
    """RmiRecExit (B4.4.16): the second 2 KiB of RmiRecRun, written by the RMM."""

    SIZE: ClassVar[int] = 0x800

    exit_reason: int = member(0x0, "B")
    esr: int = member(0x100, "Q")
    far: int = member(0x108, "Q")
    hpfar: int = member(0x110, "Q")
    gprs: list[int] = member(0x200, "Q", 31)
    gicv3_hcr: int = member(0x300, "Q")
    gicv3_lrs: list[int] = member(0x308, "Q", 16)
    gicv3_misr: int = member(0x388, "Q")
    gicv3_vmcr: int = member(0x390, "Q")
    cntp_ctl: int = member(0x400, "Q")
    cntp_cval: int = member(0x408, "Q")
    cntv_ctl: int = member(0x410, "Q")
    cntv_cval: int = member(0x418, "Q")
    ripas_base: int = member(0x500, "Q")
    ripas_top: int = member(0x508, "Q")
    ripas_value: int = member(0x510, "B")
    imm: int = member(0x600, "H")
    pmu_ovf_status: int = member(0x700, "B")


#: Byte offsets of the two halves of RmiRecRun (B4.4.20).
REC_RUN_ENTER_OFFSET = 0x0
REC_RUN_EXIT_OFFSET = 0x800
