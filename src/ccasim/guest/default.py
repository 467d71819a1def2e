"""The default realm guest: what ``ccasim run`` boots when no program is named.

It exercises the realm kernel model (:mod:`ccasim.guest.kernel`) end to end: it boots
(PSCI's SMCCC probe, RSI version, REALM_CONFIG, RIPAS RAM over memory, a shared bounce-buffer
pool, the console; a warning when Linux would have left RSI alone),
starts the secondary CPUs, prints through the console, touches memory (each page a stage 2
fault the host serves), shares and unshares buffers, asks for an attestation token for a
challenge and hands it to the VMM, extends a REM, and powers off.

Parameters scale it: ``touch_mib`` MiB of memory touched per CPU (-1: all of RAM, shared
among the CPUs), ``shares`` buffers converted to shared and back, ``challenge`` (hex, 32 to
64 bytes; empty: ask the VMM for one, else bytes 0..63), ``rem`` (what REM0 is extended
with; empty: none), ``bounce`` pages of bounce buffers.
"""

from __future__ import annotations

from ccasim.guest.kernel import PAGE, Call, Kernel, read_device_tree
from ccasim.guest.registry import program
from ccasim.isa import GuestCpu, Store

DEFAULT_CHALLENGE = bytes(range(64))


@program("ccasim-default")
def default_guest(
    cpu: GuestCpu,
    touch_mib: int = 2,
    shares: int = 4,
    challenge: str = "",
    rem: str = "ccasim",
    bounce: int = 8,
) -> Call:
    """Boot, bring up the CPUs, touch memory, share buffers, attest, extend REM0, power off."""
    if cpu.mpidr:
        yield from secondary(cpu, touch_mib)
        return
    kernel = Kernel(cpu)
    plat = yield from kernel.boot(bounce_pages=bounce)
    say = kernel.print
    yield from say(
        f"ccasim realm kernel: {len(plat.cpus)} CPU(s), {plat.ram_size >> 20} MiB of RAM"
        f" at {plat.ram_base:#x}, IPA width {kernel.ipa_width}"
        f" (NS-shared bit {kernel.shared_bit:#x})\n"
    )
    for warning in kernel.warnings:
        yield from say(f"warning: {warning}\n")
    if plat.bootargs:
        yield from say(f"command line: {plat.bootargs}\n")
    started = yield from kernel.start_secondaries(cpu.pc, cpu.gprs[0])
    if started:
        up = sum(1 for r in started if r == 0)
        yield from say(f"smp: brought up {up} of {len(started)} secondary CPU(s)\n")
    pages = touched_pages(plat.ram_size, touch_mib, len(plat.cpus))
    base = kernel.alloc_pages(pages) if pages else 0
    for i in range(pages):
        yield from kernel.store(base + i * PAGE, b"touched!")
    yield from say(f"touched {pages} page(s) of memory\n")
    for i in range(shares):
        page = kernel.alloc_pages(1)
        ok = yield from kernel.set_memory_decrypted(page, 1)
        if ok:
            yield from kernel.store(page, f"shared buffer {i}".encode())
            ok = yield from kernel.set_memory_encrypted(page, 1)
        if not ok:
            yield from say(f"buffer {i}: conversion failed, page leaked\n")
    if shares:
        yield from say(f"shared and unshared {shares} buffer(s)\n")
    if rem:
        yield from kernel.extend(1, rem.encode()[:64])
        yield from say(f"REM0 extended with {rem[:64]!r}\n")
    nonce = bytes.fromhex(challenge) if challenge else None
    if nonce is None:
        nonce = (yield from kernel.challenge_from_host()) or DEFAULT_CHALLENGE
    token = yield from kernel.attest(nonce)
    yield from say(f"attestation token: {len(token)} bytes\n")
    yield from kernel.hand_to_host(token)
    still_on = yield from kernel.wait_for_secondaries()
    if still_on:
        yield from say(f"CPUs still on: {', '.join(hex(m) for m in still_on)}\n")
    yield from say("reboot: Power down\n")
    yield from kernel.poweroff()


def touched_pages(ram_size: int, touch_mib: int, cpus: int) -> int:
    """Pages each CPU touches."""
    if touch_mib < 0:  # all of RAM, less what the kernel keeps, shared among the CPUs
        return max(ram_size // PAGE - 1024, 0) // cpus
    return touch_mib * (1 << 20) // PAGE


def secondary(cpu: GuestCpu, touch_mib: int) -> Call:
    """A secondary CPU (started with X0 = the device tree): it touches its share of memory
    and turns itself off. Its share is its own slice of RAM (all of RAM in equal slices), or
    pages from the middle of RAM up; the image, device tree and initrd are left alone."""
    plat = yield from read_device_tree(cpu.gprs[0])
    index = plat.cpus.index(cpu.mpidr) if cpu.mpidr in plat.cpus else 1
    pages = touched_pages(plat.ram_size, touch_mib, len(plat.cpus))
    if touch_mib < 0:
        start = plat.ram_base + index * (plat.ram_size // len(plat.cpus))
    else:
        start = plat.ram_base + plat.ram_size // 2 + (index - 1) * pages * PAGE
    keep_out = [plat.dtb, (cpu.pc & ~(PAGE - 1), cpu.pc + (64 << 10))]
    if plat.initrd:
        keep_out.append(plat.initrd)
    addr, done = start, 0
    while done < pages and addr + PAGE <= plat.ram_end:
        if not any(lo < addr + PAGE and addr < hi for lo, hi in keep_out):
            yield Store(addr, b"touched!")
            done += 1
        addr += PAGE
