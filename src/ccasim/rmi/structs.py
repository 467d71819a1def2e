"""In-memory RMI structures (B4.4.12 RmiRealmParams, B4.4.19 RmiRecParams, B4.4.20 RmiRecRun).

Each is a 4 KiB little-endian structure that the host writes into a Non-secure granule and
passes to the RMM by physical address. ``pack`` gives the exact bytes, ``unpack`` reads them back;
bytes that no member covers are SBZ (written as zero, ignored on read).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.rmi.types import REALM_FLAG_SVE, HashAlgorithm


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

    SIZE: ClassVar[int] = GRANULE_SIZE
    _codecs: ClassVar[dict[type, tuple[struct.Struct, list[tuple[str, int, bool]]]]] = {}
    _fast: ClassVar[dict[type, tuple[Callable[..., bytes], Callable[..., Any]] | None]] = {}

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
                is_bytes = m["fmt"].endswith("s")  # count: the byte length
                layout.append((f.name, struct.calcsize(code) if is_bytes else m["count"], is_bytes))
            fmt += f"{cls.SIZE - pos}x"
            codec = AbiStruct._codecs[cls] = (struct.Struct(fmt), layout)
        return codec

    @classmethod
    def _compiled(cls) -> tuple[Callable[..., bytes], Callable[..., Any]] | None:
        """A pack and an unpack made for this class's members (as dataclasses makes its
        ``__init__``): one call each, no loop over members. None for classes with byte-string
        members, whose lengths the generic path checks."""
        if cls in AbiStruct._fast:
            return AbiStruct._fast[cls]
        codec, layout = cls._codec()
        fast: tuple[Callable[..., bytes], Callable[..., Any]] | None = None
        if not any(is_bytes for _, _, is_bytes in layout):
            values, fields, i = [], [], 0
            for name, count, _ in layout:
                values.append(f"*self.{name}" if count > 1 else f"self.{name}")
                fields.append(f"{name}=list(v[{i}:{i + count}])" if count > 1 else f"{name}=v[{i}]")
                i += count
            source = (
                f"def pack(self):\n    return _pack({', '.join(values)})\n"
                f"def unpack(data, base=0):\n    v = _unpack_from(data, base)\n"
                f"    return _cls({', '.join(fields)})\n"
            )
            namespace: dict[str, Any] = {
                "_pack": codec.pack,
                "_unpack_from": codec.unpack_from,
                "_cls": cls,
            }
            exec(source, namespace)  # our own source, built from the members
            fast = (namespace["pack"], namespace["unpack"])
        AbiStruct._fast[cls] = fast
        return fast

    def pack(self) -> bytes:
        """The structure's bytes; ValueError names a member whose value does not fit."""
        fast = self._compiled()
        if fast is not None:
            try:
                return fast[0](self)
            except (struct.error, TypeError):
                pass  # the generic path below says which member is wrong
        return self._pack_generic()

    def _pack_generic(self) -> bytes:
        codec, layout = self._codec()
        values: list[object] = []
        for name, count, is_bytes in layout:
            value = getattr(self, name)
            if is_bytes:
                value = bytes(value)
                if len(value) > count:  # struct would truncate it without a word
                    what = f"{type(self).__name__}.{name}"
                    raise ValueError(f"{what} holds at most {count} bytes, not {len(value)}")
                values.append(value)
            elif count > 1:
                if len(value) != count:
                    raise ValueError(f"{name} needs {count} values, got {len(value)}")
                values.extend(value)
            else:
                values.append(value)
        try:
            return codec.pack(*values)
        except struct.error:
            raise ValueError(self._misfit()) from None

    def _misfit(self) -> str:
        """Which member's value does not fit its type (after struct refused to pack)."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            code = f.metadata["fmt"]
            if code.endswith("s"):
                continue
            bits = 8 * struct.calcsize(code)
            low, high = (
                (-(1 << bits - 1), (1 << bits - 1) - 1) if code.islower() else (0, (1 << bits) - 1)
            )
            value = getattr(self, f.name)
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, v in items:
                if not isinstance(v, int) or not low <= v <= high:
                    where = f.name if i is None else f"{f.name}[{i}]"
                    name = f"{type(self).__name__}.{where}"
                    return f"{name}={v!r} does not fit its {bits}-bit field ({low}..{high})"
        return f"{type(self).__name__}: a member does not fit its field"

    def pack_into(self, buf: bytearray, base: int) -> None:
        buf[base : base + self.SIZE] = self.pack()

    @classmethod
    def unpack(cls, data: bytes, base: int = 0):
        fast = cls._compiled()
        if fast is not None:
            return fast[1](data, base)
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
    """RmiRealmParams (B4.4.12): the host's request to RMI_REALM_CREATE.

    The members hold the spec's encodings, byte for byte, and three of them are not counts:

    - ``num_bps``, ``num_wps``: the number of breakpoints / watchpoints *minus one*
      (``num_bps=1`` asks for 2 breakpoints; 0 is reserved);
    - ``sve_vl``: the SVE vector length as (VL / 128) - 1, like ZCR_ELx.LEN
      (``sve_vl=3`` is 512 bits), meaningful with the SVE flag;
    - ``s2sz`` is the IPA width itself (48 means 2^48 bytes), not a T0SZ.

    Host capabilities elsewhere in ccasim (``ccasim measure --num-bps``, ``Machine(num_bps=)``,
    :class:`~ccasim.measure.Capabilities`) are counts. :meth:`from_counts` builds the structure
    from counts and :attr:`breakpoints`, :attr:`watchpoints` and :attr:`sve_vector_length`
    read them back, so the two conventions cannot be mixed up by accident: every member is
    measured into the RIM (B4.3.9.4), so a count written as an encoding gives another RIM.
    """

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

    @classmethod
    def from_counts(
        cls, *, breakpoints: int, watchpoints: int, sve_vector_length: int = 0, **members: object
    ) -> RealmParams:
        """RmiRealmParams for ``breakpoints`` and ``watchpoints`` (2..64) and an SVE vector
        length in bits (0, or a multiple of 128 up to 2048, which also sets the SVE flag);
        ``members`` gives the other members as they are encoded."""
        for name, count in (("breakpoints", breakpoints), ("watchpoints", watchpoints)):
            if not 2 <= count <= 64:
                raise ValueError(f"{name}={count}: the architecture allows 2..64")
        if sve_vector_length and not (
            sve_vector_length % 128 == 0 and 128 <= sve_vector_length <= 2048
        ):
            raise ValueError(f"sve_vector_length={sve_vector_length}: 0 or 128..2048 in 128s")
        flags = int(members.pop("flags", 0))  # type: ignore[call-overload]
        if sve_vector_length:
            flags |= REALM_FLAG_SVE
        return cls(
            flags=flags,
            num_bps=breakpoints - 1,
            num_wps=watchpoints - 1,
            sve_vl=sve_vector_length // 128 - 1 if sve_vector_length else 0,
            **members,  # type: ignore[arg-type]
        )

    @property
    def breakpoints(self) -> int:
        """The number of breakpoints requested (``num_bps + 1``)."""
        return self.num_bps + 1

    @property
    def watchpoints(self) -> int:
        """The number of watchpoints requested (``num_wps + 1``)."""
        return self.num_wps + 1

    @property
    def sve_vector_length(self) -> int:
        """The SVE vector length requested, in bits: 0 without the SVE flag."""
        return (self.sve_vl + 1) * 128 if self.flags & REALM_FLAG_SVE else 0


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
