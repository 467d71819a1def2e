"""The host kernel's KVM for realms, as the Linux Arm CCA host series (v8, RMM 1.0) builds
it: Normal-world software on the machine that drives the RMM only through ``Machine.smc``
and touches memory only through the Non-secure PAS.

Its interface has the shape of the KVM uAPI, so a VMM written against it reads like kvmtool::

    kvm = Kvm(machine)
    vm = kvm.create_vm(uapi.KVM_VM_TYPE_ARM_REALM | uapi.KVM_VM_TYPE_ARM_IPA_SIZE(40))
    vm.enable_cap(uapi.KVM_CAP_ARM_RME, uapi.KVM_CAP_ARM_RME_CREATE_REALM)

Errors are :class:`KvmError` (an ``OSError`` with the errno the ioctl would return).
"""

from ccasim.kvm import uapi
from ccasim.kvm.errors import KvmError
from ccasim.kvm.kvm import Kvm
from ccasim.kvm.memory import GuestMemfd, Owner, UserMemory
from ccasim.kvm.realm import RealmState
from ccasim.kvm.rmi import Injection, RmiCall
from ccasim.kvm.sched import PREEMPTION_POINTS, Scheduler, WouldBlockForever
from ccasim.kvm.vcpu import KVM_ARM_TARGET_GENERIC_V8, Vcpu
from ccasim.kvm.vm import Vm

__all__ = [
    "KVM_ARM_TARGET_GENERIC_V8",
    "PREEMPTION_POINTS",
    "GuestMemfd",
    "Injection",
    "Kvm",
    "KvmError",
    "Owner",
    "RealmState",
    "RmiCall",
    "Scheduler",
    "UserMemory",
    "Vcpu",
    "Vm",
    "WouldBlockForever",
    "uapi",
]
