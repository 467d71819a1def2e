"""The Realm Services Interface ABI (chapter B5): what crosses between a realm and the RMM.

Shared by realm software (guest programs) and the RMM model, as :mod:`ccasim.rmi` is for the
host side.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from ccasim.arch.vmsa import GRANULE_SIZE
from ccasim.smccc import Function, functions

#: RSI 1.0 (B5.1), encoded as RsiInterfaceVersion (B5.4.4).
RSI_VERSION_1_0 = 0x1_0000


class RsiFid(enum.IntEnum):
    """RSI command FIDs (B5.3)."""

    VERSION = 0xC400_0190
    FEATURES = 0xC400_0191
    MEASUREMENT_READ = 0xC400_0192
    MEASUREMENT_EXTEND = 0xC400_0193
    ATTESTATION_TOKEN_INIT = 0xC400_0194
    ATTESTATION_TOKEN_CONTINUE = 0xC400_0195
    REALM_CONFIG = 0xC400_0196
    IPA_STATE_SET = 0xC400_0197
    IPA_STATE_GET = 0xC400_0198
    HOST_CALL = 0xC400_0199


_CHALLENGE = tuple(f"challenge_{i}" for i in range(8))
_VALUE = tuple(f"value_{i}" for i in range(8))

#: The RSI commands of RMM 1.0 as the spec declares them (B5.3.x.1 Interface).
RSI_COMMANDS: dict[int, Function] = functions(
    Function(
        RsiFid.ATTESTATION_TOKEN_CONTINUE,
        "RSI_ATTESTATION_TOKEN_CONTINUE",
        ("addr", "offset", "size"),
        ("len",),
    ),
    Function(RsiFid.ATTESTATION_TOKEN_INIT, "RSI_ATTESTATION_TOKEN_INIT", _CHALLENGE, ("size",)),
    Function(RsiFid.FEATURES, "RSI_FEATURES", ("index",), ("value",)),
    Function(RsiFid.HOST_CALL, "RSI_HOST_CALL", ("addr",)),
    Function(RsiFid.IPA_STATE_GET, "RSI_IPA_STATE_GET", ("base", "top"), ("out_top", "ripas")),
    Function(
        RsiFid.IPA_STATE_SET,
        "RSI_IPA_STATE_SET",
        ("base", "top", "ripas", "flags"),
        ("new_base", "response"),
    ),
    Function(RsiFid.MEASUREMENT_EXTEND, "RSI_MEASUREMENT_EXTEND", ("index", "size", *_VALUE)),
    Function(RsiFid.MEASUREMENT_READ, "RSI_MEASUREMENT_READ", ("index",), _VALUE),
    Function(RsiFid.REALM_CONFIG, "RSI_REALM_CONFIG", ("addr",)),
    Function(RsiFid.VERSION, "RSI_VERSION", ("req",), ("lower", "higher")),
)

#: SMCCC allocates 0x190-0x1AF of the Standard Secure Service range to RSI.
RSI_FID_FIRST = 0xC400_0190
RSI_FID_LAST = 0xC400_01AF


class RsiStatus(enum.IntEnum):
    """RsiCommandReturnCode (B5.4.1)."""

    SUCCESS = 0
    ERROR_INPUT = 1
    ERROR_STATE = 2
    INCOMPLETE = 3
    ERROR_UNKNOWN = 4


class RsiRipas(enum.IntEnum):
    """RsiRipas (B5.4.7)."""

    EMPTY = 0
    RAM = 1
    DESTROYED = 2
    DEV = 3


#: RsiRipasChangeFlags.destroyed (B5.4.9): a change from DESTROYED is permitted.
RIPAS_CHANGE_DESTROYED = 1
#: RsiResponse (B5.4.6)
RSI_ACCEPT = 0
RSI_REJECT = 1


@dataclass
class RealmConfig:
    """RsiRealmConfig (B5.4.5): 4096 bytes the RMM writes for RSI_REALM_CONFIG."""

    ipa_width: int
    hash_algo: int
    rpv: bytes = bytes(64)

    SIZE = GRANULE_SIZE

    def pack(self) -> bytes:
        buf = bytearray(self.SIZE)
        struct.pack_into("<QB", buf, 0x0, self.ipa_width, self.hash_algo)
        buf[0x200:0x240] = self.rpv
        return bytes(buf)

    @classmethod
    def unpack(cls, data: bytes) -> RealmConfig:
        ipa_width, hash_algo = struct.unpack_from("<QB", data, 0)
        return cls(ipa_width, hash_algo, bytes(data[0x200:0x240]))


@dataclass
class HostCall:
    """RsiHostCall (B5.4.3): 256 bytes in realm memory; immediate and X0..X30."""

    imm: int = 0
    gprs: list[int] = field(default_factory=lambda: [0] * 31)

    SIZE = 0x100
    _LAYOUT = struct.Struct("<H6x31Q")

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.imm, *self.gprs)

    @classmethod
    def unpack(cls, data: bytes) -> HostCall:
        imm, *gprs = cls._LAYOUT.unpack_from(data, 0)
        return cls(imm, list(gprs))
