"""A copy of everything the RMM holds, for debuggers, tests and invariant checkers.

:meth:`ccasim.Machine.debug_state` returns one. It is a copy: changing it changes nothing in
the RMM. The invariants the RMM keeps over this state are documented on the types
(:mod:`ccasim.rmm.types`) and checked after every call by the property tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from ccasim.arch.vmsa import GRANULE_SHIFT
from ccasim.rmm.realm import Realm
from ccasim.rmm.rec import Rec
from ccasim.rmm.s2tt import Rtte
from ccasim.rmm.types import GranuleState

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm


@dataclass(frozen=True)
class RmmState:
    """The RMM's state: granule states (C1.6; UNDELEGATED granules are absent), realms by RD
    (C1.16), RECs by REC granule (C1.19, with the vCPU state the RMM saves), RTTs by RTT
    granule (512 entries each, 16 at level -1; C1.29) and the VMIDs in use."""

    granules: Mapping[int, GranuleState]
    realms: Mapping[int, Realm]
    recs: Mapping[int, Rec]
    rtts: Mapping[int, tuple[Rtte, ...]]
    vmids: frozenset[int]


def copy_realm(realm: Realm) -> Realm:
    copy = dataclasses.replace(realm, measurements=list(realm.measured()))
    copy.rim_key = realm.rim_key  # the same realm
    return copy


def copy_rec(rec: Rec) -> Rec:
    """A copy of ``rec``; the vCPU's program (a running generator) is shared, not copied."""
    vcpu = rec.vcpu
    vcpu_copy = dataclasses.replace(
        vcpu,
        gprs=list(vcpu.gprs),
        gicv3_lrs=list(vcpu.gicv3_lrs),
        console=list(vcpu.console),
    )
    return dataclasses.replace(rec, aux=list(rec.aux), vcpu=vcpu_copy, sysregs=dict(rec.sysregs))


def snapshot(rmm: Rmm) -> RmmState:
    return RmmState(
        granules=MappingProxyType({g << GRANULE_SHIFT: st for g, st in rmm.granules.items()}),
        realms=MappingProxyType({rd: copy_realm(r) for rd, r in rmm.realms.items()}),
        recs=MappingProxyType({addr: copy_rec(r) for addr, r in rmm.recs.items()}),
        rtts=MappingProxyType({addr: tuple(rtt) for addr, rtt in rmm.rtts.items()}),
        vmids=frozenset(rmm.vmids),
    )
