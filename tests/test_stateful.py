"""Stateful fuzzing of the whole stack with hypothesis state machines.

- The KVM uAPI (and through it the RMM): several realm VMs at once, built, run and closed
  while RMI calls fail at random (KVM's fault injection, as a real RMM's errors would reach
  it); every ioctl succeeds or fails with an errno, never a Python exception, and KVM's page
  accounting matches the granule states after every step.
- The RSI and PSCI surface from inside a running realm: any call with any arguments, loads
  and stores anywhere (RAM, EMPTY, MMIO, beyond the IPA space), the host answering the exits
  they cause (RIPAS changes accepted or rejected, PSCI completed, aborts emulated or made
  SEAs), and the host's timer interrupting the realm (a token being signed too).

- The RMI surface: several realms built, changed and destroyed from the granules earlier
  rules delegated, with misaligned, wrong-state and junk arguments; a call that fails
  changes nothing.

On all of them, ccasim.check's invariants hold around every SMC (the RMI surface is also
test_properties' and python -m ccasim.fuzz's).
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

import ccasim
from ccasim import guest
from ccasim.check import InvariantChecker, check_host_pages
from ccasim.kvm import Kvm, KvmError, uapi
from ccasim.psci import PsciFid
from ccasim.rmi import FID, RecEnter, RecExitReason, RecParams, Status
from ccasim.rmi.types import ENTER_EMUL_MMIO, ENTER_INJECT_SEA, ENTER_RIPAS_RESPONSE_REJECT
from ccasim.rmm.rsi.attestation import SIGN_STEP_TICKS, SIGN_STEPS
from ccasim.rsi import RsiFid
from kvm_host import MiB, realm_vm, serve
from support import PUPPET_LOAD, PUPPET_STORE, RAM_BASE, Host, Puppet, snapshot

INJECTABLE = [FID.DATA_CREATE, FID.DATA_CREATE_UNKNOWN, FID.RTT_CREATE, FID.REC_CREATE,
              FID.REALM_ACTIVATE, FID.RTT_INIT_RIPAS, FID.REC_ENTER, FID.DATA_DESTROY,
              FID.RTT_DESTROY, FID.GRANULE_DELEGATE, FID.GRANULE_UNDELEGATE,
              FID.REALM_DESTROY, FID.REC_DESTROY]  # fmt: skip


def attempt(call) -> str | None:
    """Run an ioctl: None if it succeeds, its errno name if KVM refuses it."""
    try:
        call()
    except KvmError as e:
        return e.name
    return None


class HostAgainstTheStack(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine = ccasim.Machine()
        self.checker = InvariantChecker(self.machine, full_every=8)
        self.kvm = Kvm(self.machine)
        self.realms: list = []
        self.stage: dict[int, str] = {}

    @precondition(lambda self: len(self.realms) < 3)
    @rule(vcpus=st.integers(1, 2))
    def create_vm(self, vcpus):
        realm = realm_vm(self.kvm, size=2 * MiB, vcpus=vcpus)
        self.realms.append(realm)
        self.stage[id(realm)] = "none"

    def _pick(self, data, stage):
        candidates = [r for r in self.realms if self.stage[id(r)] == stage]
        return data.draw(st.sampled_from(candidates)) if candidates else None

    @rule(data=st.data())
    def build(self, data):
        """CREATE_REALM, INIT_RIPAS, POPULATE the boot program, finalize RECs, ACTIVATE."""
        realm = self._pick(data, "none")
        if realm is None:
            return
        steps = [
            lambda: realm.cap(uapi.KVM_CAP_ARM_RME_CREATE_REALM),
            lambda: realm.cap(uapi.KVM_CAP_ARM_RME_INIT_RIPAS_REALM,
                              uapi.ArmRmeInitRipas(realm.base, realm.size)),
            lambda: realm.populate(realm.base, guest.image("t.kvm-idle")),
            lambda: realm.vcpus[0].set_one_reg(uapi.KVM_REG_ARM_CORE_PC, realm.base),
            *[lambda v=v: v.finalize(uapi.KVM_ARM_VCPU_REC) for v in realm.vcpus],
            lambda: realm.cap(uapi.KVM_CAP_ARM_RME_ACTIVATE_REALM),
        ]  # fmt: skip
        for step in steps:
            if attempt(step) is not None:
                self.stage[id(realm)] = "broken"
                return
        self.stage[id(realm)] = "active"

    @rule(data=st.data())
    def run(self, data):
        realm = self._pick(data, "active")
        if realm is not None:
            attempt(lambda: serve(realm.vcpus[0], limit=20))

    @rule(data=st.data(), command=st.sampled_from(INJECTABLE), nth=st.integers(1, 4),
          status=st.sampled_from([Status.ERROR_INPUT, Status.ERROR_RTT, Status.ERROR_REALM]))  # fmt: skip
    def inject(self, data, command, nth, status):
        """The next calls of a command fail, as an RMM's errors would reach KVM."""
        self.kvm.inject(command, status, nth)

    @rule(data=st.data())
    def close(self, data):
        if not self.realms:
            return
        realm = data.draw(st.sampled_from(self.realms))
        attempt(realm.vm.close)
        self.realms.remove(realm)

    @invariant()
    def invariants_hold(self):
        self.checker.finish()
        check_host_pages(self.kvm, self.machine)

    def teardown(self):
        for realm in list(self.realms):
            attempt(realm.vm.close)
        self.kvm.rmi.injections.clear()
        self.checker.finish()
        check_host_pages(self.kvm, self.machine)


TestHostAgainstTheStack = HostAgainstTheStack.TestCase
TestHostAgainstTheStack.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)


# -- the RSI and PSCI surface, from inside a running realm ----------------------------------------

RSI_FIDS = [RsiFid.VERSION, RsiFid.FEATURES, RsiFid.MEASUREMENT_READ, RsiFid.MEASUREMENT_EXTEND,
            RsiFid.ATTESTATION_TOKEN_INIT, RsiFid.ATTESTATION_TOKEN_CONTINUE,
            RsiFid.REALM_CONFIG, RsiFid.IPA_STATE_SET, RsiFid.IPA_STATE_GET,
            PsciFid.VERSION, PsciFid.FEATURES, PsciFid.AFFINITY_INFO, PsciFid.CPU_ON,
            0xC400_01AF, 0x8400_001F]  # fmt: skip
ADDRESSES = st.one_of(
    st.integers(0, 40).map(lambda p: RAM_BASE + p * 0x1000),  # mapped, unmapped, EMPTY
    st.integers(0, 3).map(lambda p: (1 << 47) + p * 0x1000),  # the Unprotected half: MMIO
    st.just(1 << 48),  # beyond the IPA space
)
VALUES = st.one_of(
    st.sampled_from([0, 1, 2, 4, 64, 0x100, 0x1000]),
    st.integers(0, 31).map(lambda p: RAM_BASE + p * 0x1000),  # RAM, mapped or not
    st.integers(0, 3).map(lambda p: (1 << 47) + p * 0x1000),  # Unprotected IPAs
    st.integers(0, 2**64 - 1),
)


class RealmAgainstTheRmm(RuleBasedStateMachine):
    """A realm making RSI and PSCI calls with any arguments, and a host answering its exits
    (RIPAS changes accepted or rejected, PSCI completed or not) with the RMM's invariants
    checked around every SMC."""

    def __init__(self) -> None:
        super().__init__()
        machine = ccasim.Machine()
        self.checker = InvariantChecker(machine, full_every=4)
        self.host = Host(machine=machine)
        self.puppet = Puppet(self.host, recs=2)
        self.puppet.finish()  # at its first host call, ready for orders
        self.exit = None

    @precondition(lambda self: self.exit is None)
    @rule(fid=st.sampled_from(RSI_FIDS), args=st.lists(VALUES, max_size=10))
    def realm_calls(self, fid, args):
        exit_ = self.puppet.smc(fid, *args)
        if exit_.exit_reason != RecExitReason.HOST_CALL:
            self.exit = exit_

    @precondition(lambda self: self.exit is None)
    @rule(address=ADDRESSES, write=st.booleans())
    def realm_touches(self, address, write):
        """A load or a store: RAM, RAM not mapped or EMPTY, MMIO in the Unprotected half,
        beyond the IPA space. The RMM serves it, or exits to the host (a Data Abort)."""
        exit_ = self.puppet.smc(PUPPET_STORE if write else PUPPET_LOAD, address, 0x5A)
        if exit_.exit_reason != RecExitReason.HOST_CALL:
            self.exit = exit_

    @rule(delay=st.integers(0, 3 * SIGN_STEPS * SIGN_STEP_TICKS))
    def host_arms_its_timer(self, delay):
        """The host's EL2 timer: its interrupt stops the realm, or a token being signed
        (A7.2.2), with a REC exit due to IRQ."""
        self.host.m.set_host_timer(self.host.m.read_counter() + delay)

    @precondition(lambda self: self.exit is not None)
    @rule(accept=st.booleans())
    def host_answers(self, accept):
        exit_, self.exit = self.exit, None
        if exit_.exit_reason == RecExitReason.IRQ and accept:
            self.host.m.set_host_timer(None)  # else the REC exits again at once
        flags = 0 if accept else ENTER_RIPAS_RESPONSE_REJECT
        if exit_.exit_reason == RecExitReason.SYNC:  # a Data Abort: emulate it, or an SEA
            flags = ENTER_EMUL_MMIO if accept else ENTER_INJECT_SEA
        if exit_.exit_reason == RecExitReason.RIPAS_CHANGE and accept:
            base = exit_.ripas_base
            while base < exit_.ripas_top:
                done = self.host.rmi.rtt_set_ripas(self.puppet.rd, self.puppet.rec, base,
                                                   exit_.ripas_top)  # fmt: skip
                if not done.ok:
                    flags = ENTER_RIPAS_RESPONSE_REJECT
                    break
                base = done.out_top
        elif exit_.exit_reason == RecExitReason.PSCI and exit_.gprs[0] in (
            PsciFid.CPU_ON,
            PsciFid.AFFINITY_INFO,
        ):
            recs = self.puppet.recs
            target = recs[exit_.gprs[1] & 0xFF] if exit_.gprs[1] & 0xFF < len(recs) else recs[1]
            self.host.rmi.psci_complete(self.puppet.rec, target, 0)
        entered = self.host.rmi.rec_enter(self.puppet.rec, self.puppet.run, RecEnter(flags=flags))
        if not entered.ok:  # the RMM refused this entry (B4.3.14.2): the exit stays pending
            self.exit = exit_
            return
        back = self.host.rmi.rec_exit(self.puppet.run)
        self.puppet._waiting[self.puppet.rec] = back.exit_reason == RecExitReason.HOST_CALL
        if back.exit_reason != RecExitReason.HOST_CALL:
            self.exit = back

    @invariant()
    def invariants_hold(self):
        self.checker.finish()


TestRealmAgainstTheRmm = RealmAgainstTheRmm.TestCase
TestRealmAgainstTheRmm.settings = settings(max_examples=30, stateful_step_count=15, deadline=None)


# -- the RMI surface: several realms built, changed and destroyed --------------------------------

IPAS = st.sampled_from([0x1000, 0x2000, 0x5000, 0x20_0000, 0x20_1000, 0, 1 << 30, 1 << 47])


class HostAgainstTheRmm(RuleBasedStateMachine):
    """Mostly valid RMI sequences over several realms (delegated granules and realms are
    drawn from what earlier rules made), mixed with misaligned, wrong-state and junk
    arguments. Every call is checked (ccasim.check), and one that fails changes nothing."""

    granules = Bundle("granules")
    realms = Bundle("realms")

    def __init__(self) -> None:
        super().__init__()
        machine = ccasim.Machine(rec_aux_count=0)  # so that a REC needs no auxiliary granule
        self.checker = InvariantChecker(machine)
        self.host = Host(machine=machine)
        self.vmid = 1

    def call(self, fid: int, *args: int) -> tuple[int, ...]:
        before = snapshot(self.host.m)
        result = self.host.m.smc(fid, *args)
        if result[0] != 0:
            assert snapshot(self.host.m) == before, f"a failed {fid:#x} changed the machine"
        return result

    @rule(target=granules, skew=st.sampled_from([0, 0, 0, 8]))
    def delegate(self, skew):
        pa = self.host.alloc()
        self.call(FID.GRANULE_DELEGATE, pa + skew)
        return pa

    @rule(pa=consumes(granules))
    def undelegate(self, pa):
        self.call(FID.GRANULE_UNDELEGATE, pa)

    @rule(target=realms, rtt=consumes(granules), rd=consumes(granules),
          reuse_vmid=st.booleans())  # fmt: skip
    def create_realm(self, rtt, rd, reuse_vmid):
        self.vmid += not reuse_vmid
        params = self.host.realm_params(vmid=self.vmid, rtt_base=rtt)
        self.call(FID.REALM_CREATE, rd, self.host.ns_page(params.pack()))
        return rd

    @rule(rd=realms, rtt=consumes(granules), ipa=IPAS, level=st.integers(0, 4))
    def rtt_create(self, rd, rtt, ipa, level):
        self.call(FID.RTT_CREATE, rd, rtt, ipa, level)

    @rule(rd=realms, data=consumes(granules), ipa=IPAS, measured=st.booleans(),
          unknown=st.booleans())  # fmt: skip
    def data_create(self, rd, data, ipa, measured, unknown):
        if unknown:
            self.call(FID.DATA_CREATE_UNKNOWN, rd, data, ipa)
        else:
            self.call(FID.DATA_CREATE, rd, data, ipa, self.host.ns_page(b"\x42"), int(measured))

    @rule(rd=realms, ipa=IPAS)
    def data_destroy(self, rd, ipa):
        self.call(FID.DATA_DESTROY, rd, ipa)

    @rule(
        rd=realms, base=IPAS, pages=st.sampled_from([1, 2, 512]), skew=st.sampled_from([0, 0x800])
    )
    def init_ripas(self, rd, base, pages, skew):
        self.call(FID.RTT_INIT_RIPAS, rd, base + skew, base + pages * 0x1000)

    @rule(rd=realms, ipa=IPAS, level=st.integers(0, 4),
          command=st.sampled_from([FID.RTT_READ_ENTRY, FID.RTT_DESTROY, FID.RTT_FOLD,
                                   FID.RTT_UNMAP_UNPROTECTED]))  # fmt: skip
    def rtt_command(self, rd, ipa, level, command):
        self.call(command, rd, ipa, level)

    @rule(rd=realms, level=st.integers(1, 3))
    def map_unprotected(self, rd, level):
        self.call(FID.RTT_MAP_UNPROTECTED, rd, 1 << 47, level, 0x8000_0000 | 0x7 << 2 | 0x3 << 6)

    @rule(rd=realms, rec=consumes(granules))
    def rec_create(self, rd, rec):
        params = RecParams(flags=1, num_aux=0)  # the first REC of a realm (MPIDR 0)
        self.call(FID.REC_CREATE, rd, rec, self.host.ns_page(params.pack()))

    @rule(rd=realms, command=st.sampled_from([FID.REALM_ACTIVATE, FID.REALM_DESTROY,
                                              FID.REC_AUX_COUNT]))  # fmt: skip
    def realm_command(self, rd, command):
        self.call(command, rd)

    @rule(fid=st.integers(0xC400_0150, 0xC400_018F), regs=st.lists(st.integers(0, 2**64 - 1),
                                                                    max_size=6))  # fmt: skip
    def junk(self, fid, regs):
        self.call(fid, *regs)

    @invariant()
    def invariants_hold(self):
        self.checker.finish()


TestHostAgainstTheRmm = HostAgainstTheRmm.TestCase
TestHostAgainstTheRmm.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
