"""The realm guest kernel model (ccasim.guest.kernel): what it reads from the device tree,
and how it converts memory between private and shared (seed 003 and the later guest series:
break-before-make, and a page whose conversion fails is leaked, never reused)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import ccasim
from ccasim import guest
from ccasim.guest.image import kernel_image
from ccasim.guest.kernel import PAGE, Kernel, KernelPanic, parse_device_tree
from ccasim.isa import Load, Store, SynchronousExternalAbort
from ccasim.kvm import Kvm
from ccasim.psci import PsciFid
from ccasim.smccc import SMCCC_VERSION
from ccasim.vmm import kvmtool, layout
from ccasim.vmm.capabilities import Capabilities
from ccasim.vmm.run import RealmVmm

CAPS = Capabilities(ipa_bits=48, num_bps=2, num_wps=2, sve_vl=0, pmu=False, pmu_num_ctrs=0)


def launch(*argv: str, kernel: bytes | None = None):
    return kvmtool.launch(CAPS, ["--realm", *argv], default_kernel=kernel)


def dtb_of(image) -> tuple[bytes, int]:
    blob = next(b for b in image.blobs if b.name == "dtb")
    return blob.data, blob.ipa


@example(cpus=10, mib=32, bootargs="========", initrd=b"\0")  # it filled pylibfdt's buffer
@given(
    cpus=st.integers(1, 16),
    mib=st.sampled_from([32, 256, 2048]),
    bootargs=st.text("abc=xyz ", max_size=40),
    initrd=st.binary(min_size=1, max_size=5000) | st.none(),
)
def test_the_kernel_reads_what_the_vmm_put_in_the_device_tree(tmp_path_factory, cpus, mib,
                                                              bootargs, initrd):  # fmt: skip
    argv = ["-c", str(cpus), "-m", f"{mib}M"]
    if bootargs:
        argv += ["-p", bootargs]
    if initrd is not None:
        path = tmp_path_factory.mktemp("initrd") / "initrd"
        path.write_bytes(initrd)
        argv += ["-i", str(path)]
    image = launch(*argv, kernel=kernel_image("ccasim-default"))
    blob, ipa = dtb_of(image)
    plat = parse_device_tree(blob, ipa)
    assert (plat.ram_base, plat.ram_size) == (layout.KVMTOOL_RAM_BASE, mib << 20)
    assert len(plat.cpus) == cpus and len(set(plat.cpus)) == cpus
    assert plat.bootargs == bootargs
    assert plat.uart == layout.KVMTOOL_UART and plat.console == layout.CCASIM_CONSOLE
    initrd_blob = next((b for b in image.blobs if b.name == "initrd"), None)
    if initrd is None:
        assert plat.initrd is None
    else:
        assert plat.initrd == (initrd_blob.ipa, initrd_blob.ipa + len(initrd))


@given(junk=st.binary(max_size=200))
def test_a_tree_libfdt_cannot_read_is_a_panic(junk):
    with pytest.raises(KernelPanic):
        parse_device_tree(b"\xd0\x0d\xfe\xed" + junk)


# -- conversions ---------------------------------------------------------------------------


@guest.program("t.kernel-convert")
def convert(cpu, pages=1, at_limit=0, bounce=1):
    """Share ``pages`` pages (with ``at_limit``, the last page below the Protected IPA limit
    and on past it: a range the RMM refuses), then try to use them."""
    kernel = Kernel(cpu)
    yield from kernel.boot(bounce_pages=bounce)
    page = kernel.shared_bit - PAGE if at_limit else kernel.alloc_pages(pages)
    ok = yield from kernel.set_memory_decrypted(page, pages)
    yield from kernel.print(f"decrypted: {ok}; leaked: {len(kernel.leaked)} page(s)\n")
    try:
        yield from kernel.store(page, b"after")
    except KernelPanic as e:
        yield from kernel.print(f"store: {e}\n")
    try:
        yield from kernel.set_memory_encrypted(page, pages)
    except KernelPanic as e:
        yield from kernel.print(f"encrypt: {e}\n")
    yield from kernel.poweroff()


def run_realm(program: str, **params) -> tuple[str, dict[str, int], list[str], int]:
    """Run ``program`` on one vCPU: the console, the host's pages after teardown and the
    RMM's answers to the realm's RSI_IPA_STATE_SET calls, the MMIO exits."""
    machine = ccasim.Machine(trace=True)
    kvm = Kvm(machine)
    vmm = RealmVmm(kvm, launch("-c", "1", "-m", "32M", kernel=kernel_image(program, **params)))
    vmm.build()
    result = vmm.run()
    vmm.close()
    assert result.ended == "power off", result
    answers = [str(r) for r in machine.rmm_log if "RSI_IPA_STATE_SET" in str(r)]
    return result.console, kvm.page_counts(), answers, result.exits["MMIO"]


def test_a_conversion_that_fails_leaks_the_pages_and_break_before_make_keeps_them_invalid():
    """003-02, as the later series resolved it: one update makes the pages invalid with the
    NS-shared bit flipped, then RSI_IPA_STATE_SET; if that fails the pages stay invalid and
    are leaked, never used again."""
    console, pages, answers, _ = run_realm("t.kernel-convert", pages=2, at_limit=1)
    assert any("RSI_ERROR_INPUT" in a for a in answers)  # the RMM refused the range
    assert "decrypted: False; leaked: 2 page(s)" in console
    # Break-before-make left the pages invalid: the linear map cannot reach them any more,
    # and a leaked page is never converted (or used) again.
    assert "store: unable to handle kernel paging request" in console
    assert "encrypt: converting a leaked page" in console
    assert all(n == 0 for owner, n in pages.items() if owner != "free")  # the host lost none


def test_a_conversion_that_succeeds_leaves_the_pages_shared_and_usable():
    console, pages, _, _ = run_realm("t.kernel-convert", pages=2)
    assert "decrypted: True; leaked: 0 page(s)" in console
    assert "store:" not in console and "encrypt:" not in console
    assert all(n == 0 for owner, n in pages.items() if owner != "free")


def test_without_a_bounce_pool_the_console_is_the_uart():
    """The shared console needs a bounce buffer for its text: without one printk goes to the
    8250, byte by byte, and reads the same."""
    uart, _, _, uart_exits = run_realm("t.kernel-convert", bounce=0)
    shared, _, _, shared_exits = run_realm("t.kernel-convert", bounce=1)
    assert uart == shared == "decrypted: True; leaked: 0 page(s)\n"
    assert uart_exits == len(uart) and shared_exits == 2  # a byte each; the buffer, a doorbell


# -- PSCI's SMCCC probe --------------------------------------------------------------------------


@guest.program("t.kernel-smccc")
def smccc(cpu):
    kernel = Kernel(cpu)
    yield from kernel.boot()
    yield from kernel.print(f"SMCCC {kernel.smccc_version:#x}; {kernel.warnings}\n")
    yield from kernel.poweroff()


@pytest.mark.parametrize("rmm_profile", ["spec", "tfrmm-1.0"])
def test_the_smccc_probe_finds_what_linux_would(rmm_profile):
    """psci_init_smccc: PSCI_FEATURES(SMCCC_VERSION), then SMCCC_VERSION. On the spec (B1.1:
    a realm's SMCCC_VERSION is not supported) it finds 1.0, below what arm64_rsi_init needs,
    and the kernel says so; TF-RMM answers 1.2 (quirk J) and nothing is said."""
    machine = ccasim.Machine(trace=True, rmm_profile=rmm_profile)
    kvm = Kvm(machine)
    vmm = RealmVmm(kvm, launch("-c", "1", "-m", "32M", kernel=kernel_image("t.kernel-smccc")))
    vmm.build()
    console = vmm.run().console
    vmm.close()
    probe = (PsciFid.VERSION, PsciFid.FEATURES, SMCCC_VERSION)
    calls = [r.fid for r in machine.rmm_log if getattr(r, "fid", None) in probe]
    if rmm_profile == "spec":
        assert console.startswith("SMCCC 0x10000; ['arm64_rsi_init: SMC Calling Convention v1.0")
        assert "Linux would not use RSI" in console
        assert calls == [PsciFid.VERSION, PsciFid.FEATURES]  # SMCCC_VERSION not offered
    else:
        assert console == "SMCCC 0x10002; []\n"
        assert calls == [PsciFid.VERSION, PsciFid.FEATURES, SMCCC_VERSION]


# -- the aliasing model of seed 003 ---------------------------------------------------------------


@guest.program("t.kernel-alias")
def alias_model(cpu):
    """Share a page, then touch it through both of its IPAs."""
    kernel = Kernel(cpu)
    yield from kernel.boot()
    page = kernel.alloc_pages(1)
    yield from kernel.set_memory_decrypted(page, 1)
    yield Store(page | kernel.shared_bit, b"via the shared alias".ljust(PAGE, b"\0"))
    shared = (yield Load(page | kernel.shared_bit, PAGE)).rstrip(b"\0")
    try:
        yield Load(page, 8)
        protected = "read"
    except SynchronousExternalAbort:
        protected = "SEA"
    yield from kernel.print(f"shared alias: {shared.decode()}; protected alias: {protected}\n")
    yield from kernel.poweroff()


def test_a_shared_page_is_reached_through_its_alias_and_its_protected_ipa_faults():
    """003-08: RSI_IPA_STATE_SET makes the protected IPA EMPTY (an access there is an SEA in
    the realm), and the page is shared through its alias in the unprotected half, which the
    host maps with a Non-secure page at the realm's first access (a stage 2 fault)."""
    machine = ccasim.Machine(trace=True)
    kvm = Kvm(machine)
    vmm = RealmVmm(kvm, launch("-c", "1", "-m", "32M", kernel=kernel_image("t.kernel-alias")))
    vmm.build()
    result = vmm.run()
    vmm.close()
    assert result.console.endswith("shared alias: via the shared alias; protected alias: SEA\n")
    assert result.exits["MEMORY_FAULT"] >= 1  # the alias mapped on demand (001-09)
