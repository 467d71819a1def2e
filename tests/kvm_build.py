"""Realm construction as Linux KVM (the RMM 1.0 Arm CCA series, ``arch/arm64/kvm/rme.c``)
performs it for a VMM, driven only through ``Machine.smc`` and NS memory.

The agreement tests build a :class:`~ccasim.measure.Launch` with these RMI calls and
compare the RMM's RIM with the calculator's. What matters for the RIM is reproduced as KVM does
it: RMI_REALM_CREATE with the start level and concatenated root RTTs KVM derives from the IPA
size; RMI_RTT_INIT_RIPAS over each RAM range, creating RTTs only when the RMM answers
RMI_ERROR_RTT and only down to the level ``find_map_level`` picks; one RMI_DATA_CREATE per
granule of each blob in ascending IPA order (creating RTTs to level 3 on RMI_ERROR_RTT); one
RMI_REC_CREATE per vCPU, only the boot vCPU runnable; unmeasured pages; RMI_REALM_ACTIVATE.
"""

from __future__ import annotations

from ccasim.measure import Launch
from ccasim.rmi import Status, levels
from support import GRANULE, Host, RealmHandle

DATA_MEASURE = 1


class KvmRealm:
    """One realm under construction, holding what KVM keeps in ``struct realm``."""

    def __init__(self, host: Host, image: Launch, vmid: int = 1) -> None:
        self.host = host
        self.rmi = host.rmi
        self.image = image
        params = image.realm_params()
        self.start_level = levels.start_level(params.s2sz)
        params.rtt_level_start = self.start_level
        params.rtt_num_start = levels.start_level_rtts(params.s2sz)
        params.vmid = vmid
        # The root RTTs are physically contiguous and aligned to their total size.
        size = params.rtt_num_start * GRANULE
        host._next = (host._next + size - 1) & ~(size - 1)
        params.rtt_base = host.delegated(params.rtt_num_start)
        self.realm = RealmHandle(host.delegated(), params, host.ns_page())
        self.rd = self.realm.rd
        self.rmi.realm_create(self.rd, self.realm.params_ptr, params).check()

    def create_rtt_levels(self, ipa: int, from_level: int, to_level: int) -> None:
        for level in range(from_level + 1, to_level + 1):
            base = ipa & ~(levels.level_size(level - 1) - 1)
            self.rmi.rtt_create(self.rd, self.host.delegated(), base, level).check()

    def init_ripas(self, base: int, top: int) -> None:
        ipa = base
        while ipa < top:
            result = self.rmi.rtt_init_ripas(self.rd, ipa, top)
            if result.status == Status.ERROR_RTT:
                level = levels.block_level(ipa, top, self.start_level)
                assert result.index < level, (hex(ipa), result.index, level)
                self.create_rtt_levels(ipa, result.index, level)
                continue
            ipa = result.check().out_top

    def data_create(self, ipa: int, content: bytes | memoryview | None) -> None:
        data = self.host.delegated()
        src = self.host.ns_page(bytes(content) if content is not None else b"")
        flags = DATA_MEASURE if content is not None else 0
        while True:
            result = self.rmi.data_create(self.rd, data, ipa, src, flags)
            if result.status != Status.ERROR_RTT:
                result.check()
                return
            self.create_rtt_levels(ipa, result.index, 3)

    def rec_create(self, index: int, pc: int, x0: int) -> int:
        runnable = index == 0
        params = self.host.rec_params(
            self.realm,
            index,
            runnable=runnable,
            pc=pc if runnable else 0,
            gprs=[x0 if runnable else 0] + [0] * 7,
        )
        rec = self.host.delegated()
        self.rmi.rec_create(self.rd, rec, self.host.ns_page(), params).check()
        return rec

    def build(self, vcpus: int = 1) -> list[bytes]:
        """Construct and activate the realm; its measurements as the RMM holds them."""
        image = self.image
        for base, size in image.ram:
            self.init_ripas(base, base + size)
        for blob in sorted(image.blobs, key=lambda b: b.ipa):
            for ipa, page in blob.granules():
                self.data_create(ipa, page)
        self.recs = [self.rec_create(index, image.pc, image.x0) for index in range(vcpus)]
        for region in image.unmeasured:
            for ipa in region.addresses():
                self.data_create(ipa, None)
        self.rmi.realm_activate(self.rd).check()
        return self.host.m.realm_measurements(self.rd)
