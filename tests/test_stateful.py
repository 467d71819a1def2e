"""Stateful fuzzing of the whole stack with hypothesis state machines.

- The KVM uAPI (and through it the RMM): several realm VMs at once, built, run and closed
  while RMI calls fail at random (KVM's fault injection, as a real RMM's errors would reach
  it); every ioctl succeeds or fails with an errno, never a Python exception, and KVM's page
  accounting matches the granule states after every step.
- The RSI and PSCI surface from inside a running realm: any call with any arguments, the
  host answering the exits it causes.

On both, ccasim.check's invariants hold around every SMC. (The RMI surface alone is
test_properties' and python -m ccasim.fuzz's.)
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import ccasim
from ccasim import guest
from ccasim.check import InvariantChecker, check_host_pages
from ccasim.kvm import Kvm, KvmError, uapi
from ccasim.psci import PsciFid
from ccasim.rmi import FID, RecEnter, RecExitReason, Status
from ccasim.rmi.types import ENTER_RIPAS_RESPONSE_REJECT
from ccasim.rsi import RsiFid
from kvm_host import MiB, realm_vm, serve
from support import RAM_BASE, Host, Puppet

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
        self.exit = None

    @precondition(lambda self: self.exit is None)
    @rule(fid=st.sampled_from(RSI_FIDS), args=st.lists(VALUES, max_size=10))
    def realm_calls(self, fid, args):
        exit_ = self.puppet.smc(fid, *args)
        if exit_.exit_reason != RecExitReason.HOST_CALL:
            self.exit = exit_

    @precondition(lambda self: self.exit is not None)
    @rule(accept=st.booleans())
    def host_answers(self, accept):
        exit_, self.exit = self.exit, None
        flags = 0 if accept else ENTER_RIPAS_RESPONSE_REJECT
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
