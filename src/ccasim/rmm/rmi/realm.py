"""RMI_REALM_CREATE, RMI_REALM_ACTIVATE, RMI_REALM_DESTROY (B4.3.9, B4.3.8, B4.3.10)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccasim.hw.memory import GRANULE_SHIFT, GRANULE_SIZE
from ccasim.rmi import levels, measurement
from ccasim.rmi.status import Status
from ccasim.rmi.structs import RealmParams
from ccasim.rmi.types import REALM_FLAG_LPA2, REALM_FLAG_PMU, REALM_FLAG_SVE, HashAlgorithm
from ccasim.rmm import rim, s2tt
from ccasim.rmm.errors import CommandFailure
from ccasim.rmm.features import RmmFeatures
from ccasim.rmm.profile import Quirk
from ccasim.rmm.realm import Realm
from ccasim.rmm.types import GranuleState, RealmState

if TYPE_CHECKING:
    from ccasim.rmm.core import Rmm


def params_are_valid(params: RealmParams) -> bool:
    """RmiRealmParamsIsValid (B3.50): hash_algo is not a reserved encoding (B4.2, B4.4.7).

    Reserved flag bits and SBZ bytes are not checked, as in the reference RMM (see
    docs/decisions.md).
    """
    return params.hash_algo in HashAlgorithm._value2member_map_


def params_are_supported(params: RealmParams, features: RmmFeatures) -> bool:
    """RealmParamsSupported (B3.34, A3.1): every requested feature is implemented."""
    lpa2 = bool(params.flags & REALM_FLAG_LPA2)
    sve = bool(params.flags & REALM_FLAG_SVE)
    pmu = bool(params.flags & REALM_FLAG_PMU)
    hash_ok = features.sha_256 if params.hash_algo == HashAlgorithm.SHA_256 else features.sha_512
    return (
        hash_ok
        and (not lpa2 or features.lpa2)
        and features.min_ipa_width <= params.s2sz <= min(features.max_ipa_width, 52 if lpa2 else 48)
        and (not sve or (features.sve and params.sve_vl <= features.max_sve_vl))
        and (not pmu or (features.pmu and params.pmu_num_ctrs <= features.pmu_num_ctrs))
        and (not pmu or params.pmu_num_ctrs > 0 or features.hpmn0)
        and 1 <= params.num_bps <= features.num_bps - 1
        and 1 <= params.num_wps <= features.num_wps - 1
    )


def rtt_config_is_valid(params: RealmParams, pa_bits: int) -> bool:
    """RttConfigIsValid (B3.55): the starting level and table count fit the IPA width.

    As in TF-RMM, a level 0 start also needs a platform PA width of at least 44 bits.
    """
    lpa2 = bool(params.flags & REALM_FLAG_LPA2)
    level = params.rtt_level_start
    min_level = levels.RTT_MIN_LEVEL_LPA2 if lpa2 else levels.RTT_MIN_LEVEL
    if not min_level <= level <= levels.RTT_PAGE_LEVEL or (level == 0 and pa_bits < 44):
        return False
    needed = levels.starting_level_rtts(params.s2sz, level, lpa2)
    return needed != 0 and needed == params.rtt_num_start


def starting_rtt(rtt_index: int, level: int, ipa_width: int) -> list[s2tt.Rtte]:
    """Entries of the ``rtt_index``-th starting-level RTT of a new realm (B4.3.9.3)."""
    size = levels.level_size(level)
    par_size = levels.protected_limit(ipa_width)
    first_ipa = rtt_index * levels.RTT_ENTRIES * size
    return [
        s2tt.RTTE_UNASSIGNED_EMPTY if first_ipa + i * size < par_size else s2tt.RTTE_UNASSIGNED_NS
        for i in range(levels.entries_per_rtt(level))
    ]


def realm_create(rmm: Rmm, rd: int, params_ptr: int) -> tuple[int, ...]:
    """B4.3.9: create a realm in state NEW with its starting-level RTTs and initial RIM.

    Every failure condition returns RMI_ERROR_INPUT and the command has no failure ordering.
    """
    rmm.expect_ns_granule(params_ptr, "params")
    params = RealmParams.unpack(rmm.read_ns_granule(params_ptr))
    if not params_are_valid(params):
        raise CommandFailure("params_valid")
    if not params_are_supported(params, rmm.features):
        raise CommandFailure("params_supp")
    num = params.rtt_num_start
    if params.rtt_base <= rd <= params.rtt_base + (num - 1) * GRANULE_SIZE:
        raise CommandFailure("alias")
    rmm.expect_granule(rd, GranuleState.DELEGATED, "rd")
    if not rtt_config_is_valid(params, rmm.mem.platform.pa_bits):
        raise CommandFailure("rtt_num_level")
    if params.rtt_base % (num * GRANULE_SIZE) and Quirk.RTT_ALIGN_UNCHECKED not in rmm.quirks:
        raise CommandFailure("rtt_align")
    rtts = [params.rtt_base + i * GRANULE_SIZE for i in range(num)]
    if not all(rmm.delegable_delegated(addr) for addr in rtts):
        raise CommandFailure("rtt_state")
    if params.vmid >= 1 << rmm.features.vmid_bits or params.vmid in rmm.vmids:
        raise CommandFailure("vmid_valid")

    algo = HashAlgorithm(params.hash_algo)
    realm = Realm(
        rd=rd,
        ipa_width=params.s2sz,
        hash_algo=algo,
        rtt_base=params.rtt_base,
        rtt_level_start=params.rtt_level_start,
        rtt_num_start=num,
        vmid=params.vmid,
        rpv=params.rpv,
        feat_lpa2=bool(params.flags & REALM_FLAG_LPA2),
        rec_aux_count=rmm.features.rec_aux_count,
        feat_sve=bool(params.flags & REALM_FLAG_SVE),
        sve_vl=params.sve_vl,
        feat_pmu=bool(params.flags & REALM_FLAG_PMU),
        pmu_num_ctrs=params.pmu_num_ctrs,
        num_bps=params.num_bps,
        num_wps=params.num_wps,
    )
    realm.measurements[0] = measurement.rim_init(algo, params)
    for i, addr in enumerate(rtts):
        rmm.rtts[addr] = starting_rtt(i, params.rtt_level_start, params.s2sz)
        rmm.granules[addr >> GRANULE_SHIFT] = GranuleState.RTT
    rmm.granules[rd >> GRANULE_SHIFT] = GranuleState.RD
    rmm.realms[rd] = realm
    rmm.vmids.add(params.vmid)
    return ()


def realm_activate(rmm: Rmm, rd: int) -> tuple[int, ...]:
    """B4.3.8: NEW -> ACTIVE. Ordering [rd_bound, rd_state] < [realm_state]."""
    realm = rmm.find_realm(rd)
    if realm.state is not RealmState.NEW:
        raise CommandFailure("realm_state", Status.ERROR_REALM)
    realm.state = RealmState.ACTIVE
    rim = realm.measured()[0]  # the RIM is final: complete it now (ccasim.rmm.rim)
    if rmm.log is not None:  # the log shows it (TF-RMM prints it only hash by hash)
        rmm.note = f"RIM {rim[: realm.hash_algo.digest_size].hex()}"
    return ()


def realm_is_live(rmm: Rmm, realm: Realm) -> bool:
    """RealmIsLive (B3.32, A2.1.4): it owns RECs, or a starting-level RTT is live."""
    return realm.num_recs != 0 or any(s2tt.is_live(rmm.rtts[a]) for a in realm.starting_rtts())


def realm_destroy(rmm: Rmm, rd: int) -> tuple[int, ...]:
    """B4.3.10: destroy a realm that is not live. Ordering [rd_bound, rd_state] < [realm_live]."""
    realm = rmm.find_realm(rd)
    if realm_is_live(rmm, realm):
        raise CommandFailure("realm_live", Status.ERROR_REALM)
    for addr in realm.starting_rtts():
        del rmm.rtts[addr]
        rmm.granules[addr >> GRANULE_SHIFT] = GranuleState.DELEGATED
    del rmm.realms[rd]
    rim.forget(realm)
    rmm.granules[rd >> GRANULE_SHIFT] = GranuleState.DELEGATED
    rmm.vmids.discard(realm.vmid)
    return ()
