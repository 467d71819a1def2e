"""Abstract RMM types (C1): the states the RMM keeps for granules, realms, RECs and RTT entries.

Each type's docstring states the invariants the RMM keeps over it, whatever the host does;
``tests/test_properties.py`` checks every one of them after each call of random RMI sequences
(through ``Machine.debug_state``).
"""

from __future__ import annotations

import enum


class GranuleState(enum.Enum):
    """RmmGranuleState (C1.7). Every granule is in exactly one state; the RMM's granule map
    holds all but the UNDELEGATED ones.

    - UNDELEGATED: the GPT gives the platform's boot PAS (NS for delegable DRAM), so the
      Normal world can access it; once undelegated it shows nothing from the Realm world.
    - Every other state: the GPT gives the Realm PAS; a Normal-world access faults.
    - DELEGATED: holds no data (reads as zeros).
    - RD: holds exactly one realm. REC: holds exactly one REC, owned by a realm whose
      ``num_recs`` counts it. REC_AUX: listed by exactly one REC.
    - DATA: mapped by exactly one ASSIGNED RTT entry (a page, or part of a block).
    - RTT: exactly one table, reached once: a realm's starting-level RTT or the target of one
      TABLE entry one level up.
    """

    UNDELEGATED = "UNDELEGATED"
    DELEGATED = "DELEGATED"
    RD = "RD"
    REC = "REC"
    REC_AUX = "REC_AUX"
    DATA = "DATA"
    RTT = "RTT"


class RealmState(enum.Enum):
    """RmmRealmState (C1.18). A realm only moves forward: NEW, then ACTIVE (RMI_REALM_ACTIVATE),
    then SYSTEM_OFF (PSCI_SYSTEM_OFF or SYSTEM_RESET from the realm). Its RIM changes only while
    it is NEW (A7.1.1)."""

    NEW = "REALM_NEW"
    ACTIVE = "REALM_ACTIVE"
    SYSTEM_OFF = "REALM_SYSTEM_OFF"


class RecState(enum.Enum):
    """RmmRecState (C1.25). RUNNING only while RMI_REC_ENTER runs it: between calls every REC
    is READY."""

    READY = "REC_READY"
    RUNNING = "REC_RUNNING"


class RttEntryState(enum.Enum):
    """RmmRttEntryState (C1.30). UNASSIGNED and ASSIGNED entries map Protected IPAs,
    UNASSIGNED_NS and ASSIGNED_NS Unprotected ones; TABLE may be either, never at level 3.
    An ASSIGNED entry maps DATA granules (a block at level 1 or 2 maps contiguous ones,
    aligned to its size); ASSIGNED_NS maps memory the RMM does not own; TABLE points to an
    RTT one level down."""

    UNASSIGNED = "UNASSIGNED"
    ASSIGNED = "ASSIGNED"
    TABLE = "TABLE"
    UNASSIGNED_NS = "UNASSIGNED_NS"
    ASSIGNED_NS = "ASSIGNED_NS"


class Ripas(enum.Enum):
    """RmmRipas (C1.26), the realm IPA state of a Protected IPA. (DEV is not used by RMM 1.0.)
    Only entries of Protected IPAs that are not TABLE carry one: the others hold EMPTY."""

    EMPTY = "EMPTY"
    RAM = "RAM"
    DESTROYED = "DESTROYED"
