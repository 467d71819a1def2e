"""What the host offers a realm (KVM's capabilities over the RMM's RMI_FEATURES), given as
Veraison's ``realm-measurements`` takes them: options, and stackable TOML files in which each
file can only lower what the files before it allowed. A VMM's own options lower them again."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace

from ccasim.arch.registers import MASK64
from ccasim.rmi.types import FeatureRegister0, HashAlgorithm
from ccasim.vmm.errors import LaunchError

#: The realm hash algorithms by the names the VMMs use (hashlib's).
HASH_ALGOS = tuple(a.hashlib_name for a in HashAlgorithm)


class CapabilityError(LaunchError):
    """An invalid capability value or configuration file."""


@dataclass(frozen=True)
class Capabilities:
    """What the host offers a realm. None means not known (yet)."""

    ipa_bits: int | None = None
    num_bps: int | None = None
    num_wps: int | None = None
    sve_vl: int | None = None  # bits; 0 disables SVE
    pmu_num_ctrs: int | None = None
    pmu: bool | None = None
    lpa2: bool | None = None
    hash_algo: str | None = None

    @classmethod
    def from_rmi_features(cls, register0: int) -> Capabilities:
        """What an RMM offers, from the value RMI_FEATURES returned for index 0
        (RmiFeatureRegister0, B4.4.6: counts are encoded minus one, the SVE length as
        VL/128 - 1). The hash algorithm is left to the VMM."""
        f = FeatureRegister0.decode(register0 & MASK64)
        return cls(
            ipa_bits=f.s2sz,
            lpa2=bool(f.lpa2),
            sve_vl=(f.sve_vl + 1) * 128 if f.sve_en else 0,
            num_bps=f.num_bps + 1,
            num_wps=f.num_wps + 1,
            pmu=bool(f.pmu_en),
            pmu_num_ctrs=f.pmu_num_ctrs if f.pmu_en else 0,
        )

    def validate(self) -> Capabilities:
        for name, low, high in (("num_bps", 2, 64), ("num_wps", 2, 64), ("pmu_num_ctrs", 0, 31)):
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise CapabilityError(f"{name}={value} is outside {low}..{high}")
        if self.ipa_bits is not None and not 32 <= self.ipa_bits <= 52:
            raise CapabilityError(f"ipa_bits={self.ipa_bits} is outside 32..52")
        vl = self.sve_vl
        if vl is not None and vl != 0 and not (vl % 128 == 0 and 128 <= vl <= 2048):
            raise CapabilityError(f"sve_vl={vl} must be 0 or a multiple of 128 up to 2048")
        if self.hash_algo is not None and self.hash_algo not in HASH_ALGOS:
            raise CapabilityError(f"hash_algo={self.hash_algo!r} must be sha256 or sha512")
        return self

    def restrict(self, other: Capabilities) -> Capabilities:
        """Apply ``other`` where it only lowers (False < True) or sets an unknown value."""
        changes = {}
        for f in fields(self):
            new, old = getattr(other, f.name), getattr(self, f.name)
            if new is None:
                continue
            if old is None or (f.name != "hash_algo" and new <= old):
                changes[f.name] = new
        return replace(self, **changes)

    def update(self, other: Capabilities) -> Capabilities:
        """Apply every value ``other`` sets (command-line options)."""
        changes = {f.name: getattr(other, f.name) for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def require(self, *names: str) -> None:
        """Raise one error naming every capability in ``names`` that is not known."""
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            options = ", ".join("--" + name.replace("_", "-") for name in missing)
            keys = ", ".join(missing)
            verb = "is" if len(missing) == 1 else "are"
            hint = " (--sve-vl 0: no SVE)" if "sve_vl" in missing else ""
            raise CapabilityError(
                f"{keys} {verb} not known: give {options} or set {keys} in a -c file{hint}"
            )


def load_toml(path: str, text: str) -> Capabilities:
    """One capability file (keys as the option names with underscores)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CapabilityError(f"{path}: not valid TOML: {e}") from None
    return from_mapping(path, data)


def from_mapping(path: str, data: dict[str, object]) -> Capabilities:
    """Capabilities from a table read from ``path`` (keys as in a capabilities file)."""
    known = {f.name: f for f in fields(Capabilities)}
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in known:
            raise CapabilityError(f"{path}: unknown key {key!r} (keys: {', '.join(known)})")
        expected = {"pmu": bool, "lpa2": bool, "hash_algo": str}.get(key, int)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise CapabilityError(f"{path}: {key} must be {expected.__name__}")
        values[key] = value
    try:
        return Capabilities(**values).validate()  # type: ignore[arg-type]
    except CapabilityError as e:
        raise CapabilityError(f"{path}: {e}") from None
