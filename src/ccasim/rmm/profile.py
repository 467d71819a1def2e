"""RMM profiles: the spec, or an RMM a board really runs, as a set of named quirks.

ccasim answers as the RMM specification 1.0-rel0 says (the ``spec`` profile, the default).
The reference RMM, TF-RMM at tag ``rmm-spec-v1.0-rel0`` (the RMM 1.0 generation), departs
from it in a few places; each departure is a :class:`Quirk`, named, with the rule it departs
from, and a profile is a set of them. ``tfrmm-1.0`` models its Release build,
``tfrmm-1.0-debug`` its Debug build (where one more departure is an assertion failure). A
quirk can also be switched on alone: ``profile("spec", "x4-preserved")``.

A quirk changes only what the RMM's interface shows (registers, memory, granule states, the
RIM). Two of them stop the RMM: one host call crashes TF-RMM there. ccasim models that as
what a user would see, an RMM that no longer answers (:class:`~ccasim.el3.monitor.RmmPanic`).
The facts come from comparing TF-RMM with ccasim over 47 million random RMI calls, from
TF-RMM's source at that generation (``runtime/rmi/*.c``, ``runtime/core/handler.c``) and from
a board's log (``../shared/rmm-logs``, for the realm side); see docs/decisions.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Quirk(enum.Enum):
    """A departure of an RMM implementation from the spec; the value is its name."""

    #: (A) Every command returns the caller's X4 in X4, where it writes no output there
    #: (TF-RMM's SMC entry keeps X4 in its result). B1.2: X0-X16 that are not outputs MBZ.
    X4_PRESERVED = "x4-preserved"
    #: (C) RMI_REALM_CREATE does not check that rtt_base is aligned to rtt_num_start granules.
    #: B4.3.9.2 rtt_align: RMI_ERROR_INPUT.
    RTT_ALIGN_UNCHECKED = "rtt-align-unchecked"
    #: (D) RMI_RTT_INIT_RIPAS with base not 4 KiB aligned fails RMI_ERROR_INPUT, before the
    #: realm's state is checked. B4.3.18.2 base_align: RMI_ERROR_RTT(walk level), unordered
    #: with realm_state.
    INIT_RIPAS_BASE_INPUT = "init-ripas-base-input"
    #: (E) RMI_RTT_INIT_RIPAS stops at an entry after the first that is not UNASSIGNED EMPTY
    #: or RAM (an ASSIGNED entry, a DESTROYED one): a smaller out_top, fewer RIM descriptors.
    #: B4.3.18.3 with RttSkipEntriesWithRipas (B3.75) going on to the first TABLE entry;
    #: A5.3.5's table reads the other way at ASSIGNED entries, so that half is ambiguous.
    INIT_RIPAS_STOPS_EARLY = "init-ripas-stops-early"
    #: (F) RMI_RTT_INIT_RIPAS whose first entry is UNASSIGNED with RIPAS DESTROYED fails
    #: RMI_ERROR_RTT(walk level). B4.3.18.2 has no condition on the RIPAS: success.
    INIT_RIPAS_REFUSES_DESTROYED = "init-ripas-refuses-destroyed"
    #: (G) RMI_RTT_READ_ENTRY of an ASSIGNED entry with RIPAS DESTROYED returns desc = 0.
    #: B4.3.20.3: desc is the DATA granule's address (RttEntryState ASSIGNED).
    READ_ENTRY_DESTROYED_NO_DESC = "read-entry-destroyed-no-desc"
    #: (H) RMI_REC_CREATE whose auxiliary granule i >= 1 fails its check (not DELEGATED,
    #: misaligned, out of range, a duplicate) unlocks granules it holds no lock on: in a Debug
    #: build an assertion fails and the RMM stops. A Release build returns RMI_ERROR_INPUT, as
    #: B4.3.12.2 (aux_state, aux_alias, aux_align) requires.
    REC_AUX_UNLOCK_ASSERT = "rec-aux-unlock-assert"
    #: (I) RMI_RTT_MAP_UNPROTECTED and RMI_RTT_UNMAP_UNPROTECTED accept a level below the
    #: realm's starting level (down to 1) and walk into a table that does not exist: the RMM
    #: crashes. B4.3.19.2 / B4.3.22.2 level_bound: RMI_ERROR_INPUT.
    UNPROTECTED_LEVEL_CRASH = "unprotected-level-crash"
    #: (J) A realm's SMCCC_VERSION returns 0x10002 (SMCCC 1.2), and PSCI_FEATURES reports
    #: SMCCC_VERSION supported (TF-RMM's realm SMC handler answers it; the RK3588 board's log
    #: shows both). B1.1: an SMC of a realm that is not RSI or PSCI returns
    #: SMCCC_NOT_SUPPORTED; B6.3.5 func_not_ok: it is not a PSCI function. A realm-side
    #: quirk: host sequences (ccasim diff) do not reach it.
    SMCCC_VERSION_ANSWERED = "smccc-version-answered"


#: The class letter of each quirk, as the comparison of TF-RMM with the spec named them.
QUIRK_CLASS = {
    Quirk.X4_PRESERVED: "A",
    Quirk.RTT_ALIGN_UNCHECKED: "C",
    Quirk.INIT_RIPAS_BASE_INPUT: "D",
    Quirk.INIT_RIPAS_STOPS_EARLY: "E",
    Quirk.INIT_RIPAS_REFUSES_DESTROYED: "F",
    Quirk.READ_ENTRY_DESTROYED_NO_DESC: "G",
    Quirk.REC_AUX_UNLOCK_ASSERT: "H",
    Quirk.UNPROTECTED_LEVEL_CRASH: "I",
    Quirk.SMCCC_VERSION_ANSWERED: "J",
}
#: The quirks only a realm's calls show: RMI sequences from the host never meet them.
REALM_QUIRKS = frozenset({Quirk.SMCCC_VERSION_ANSWERED})


@dataclass(frozen=True)
class RmmProfile:
    """An RMM implementation as ccasim models it: ``name`` and the ``quirks`` it has."""

    name: str
    quirks: frozenset[Quirk] = field(default_factory=frozenset)
    description: str = ""

    def __contains__(self, quirk: object) -> bool:
        return quirk in self.quirks

    def with_quirks(self, *names: str | Quirk) -> RmmProfile:
        """This profile with more quirks switched on (by name or :class:`Quirk`)."""
        added = frozenset(quirk_named(n) if isinstance(n, str) else n for n in names)
        if added <= self.quirks:
            return self
        names_on = "+".join(q.value for q in sorted(added - self.quirks, key=_order))
        return RmmProfile(f"{self.name}+{names_on}", self.quirks | added, self.description)


def _order(quirk: Quirk) -> str:
    return QUIRK_CLASS[quirk]


_TFRMM_RELEASE = frozenset(Quirk) - {Quirk.REC_AUX_UNLOCK_ASSERT}

PROFILES: dict[str, RmmProfile] = {
    p.name: p
    for p in (
        RmmProfile("spec", frozenset(), "the RMM specification 1.0-rel0, exactly"),
        RmmProfile(
            "tfrmm-1.0",
            _TFRMM_RELEASE,
            "TF-RMM at tag rmm-spec-v1.0-rel0 (v0.5.0), Release build",
        ),
        RmmProfile(
            "tfrmm-1.0-debug",
            frozenset(Quirk),
            "TF-RMM at tag rmm-spec-v1.0-rel0 (v0.5.0), Debug build (assertions on)",
        ),
    )
}


def quirk_named(name: str) -> Quirk:
    """The quirk called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return Quirk(name)
    except ValueError:
        known = ", ".join(q.value for q in Quirk)
        raise ValueError(f"unknown RMM quirk {name!r} (known: {known})") from None


def profile(name: str | RmmProfile = "spec", *quirks: str | Quirk) -> RmmProfile:
    """The profile called ``name`` (``spec``, ``tfrmm-1.0``, ``tfrmm-1.0-debug``), with
    ``quirks`` switched on besides; ValueError for an unknown name."""
    if isinstance(name, RmmProfile):
        base = name
    elif name in PROFILES:
        base = PROFILES[name]
    else:
        raise ValueError(f"unknown RMM profile {name!r} (known: {', '.join(PROFILES)})")
    return base.with_quirks(*quirks)


__all__ = [
    "PROFILES",
    "QUIRK_CLASS",
    "REALM_QUIRKS",
    "Quirk",
    "RmmProfile",
    "profile",
    "quirk_named",
]
