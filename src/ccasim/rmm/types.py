"""Abstract RMM types (C1): the states the RMM keeps for granules, realms, RECs and RTT entries."""

from __future__ import annotations

import enum


class GranuleState(enum.Enum):
    """RmmGranuleState (C1.7)."""

    UNDELEGATED = "UNDELEGATED"
    DELEGATED = "DELEGATED"
    RD = "RD"
    REC = "REC"
    REC_AUX = "REC_AUX"
    DATA = "DATA"
    RTT = "RTT"


class RealmState(enum.Enum):
    """RmmRealmState (C1.18)."""

    NEW = "REALM_NEW"
    ACTIVE = "REALM_ACTIVE"
    SYSTEM_OFF = "REALM_SYSTEM_OFF"


class RecState(enum.Enum):
    """RmmRecState (C1.25)."""

    READY = "REC_READY"
    RUNNING = "REC_RUNNING"


class RttEntryState(enum.Enum):
    """RmmRttEntryState (C1.30)."""

    UNASSIGNED = "UNASSIGNED"
    ASSIGNED = "ASSIGNED"
    TABLE = "TABLE"
    UNASSIGNED_NS = "UNASSIGNED_NS"
    ASSIGNED_NS = "ASSIGNED_NS"


class Ripas(enum.Enum):
    """RmmRipas (C1.26), the realm IPA state of a Protected IPA. (DEV is not used by RMM 1.0.)"""

    EMPTY = "EMPTY"
    RAM = "RAM"
    DESTROYED = "DESTROYED"
