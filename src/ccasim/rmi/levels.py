"""Realm Translation Table levels (A5.5; the VMSA's 4 KiB granule translation regime).

Pure arithmetic that the RMM and the host both need: what one entry of a level maps, where
an address falls in an RTT, how many concatenated RTTs start a realm's tables, and, on the
host side, the starting level and the block size KVM chooses for a range (the Linux Arm CCA
series' ``find_map_level``). The RMM checks the host's choices with the same definitions.
"""

from __future__ import annotations

RTT_ENTRIES = 512
RTT_PAGE_LEVEL = 3
RTT_MIN_LEVEL = 0
RTT_MIN_LEVEL_LPA2 = -1
#: Concatenating up to 16 starting-level tables resolves 4 more IPA bits (VMSA).
MAX_CONCATENATED_BITS = 4


def protected_limit(ipa_width: int) -> int:
    """The first Unprotected IPA: the top bit of the IPA space selects the Unprotected half
    (A5.2.1), so Protected IPAs are those below 2^(ipa_width - 1) (AddrIsProtected, B3.4)."""
    return 1 << (ipa_width - 1)


def entries_per_rtt(level: int) -> int:
    """Entries in one RTT: 512, except 16 at level -1 (LPA2 resolves IPA bits [51:48] there)."""
    return 16 if level == RTT_MIN_LEVEL_LPA2 else RTT_ENTRIES


def level_shift(level: int) -> int:
    """log2 of the IPA range one entry of a level ``level`` RTT maps (4 KiB granule)."""
    return 12 + 9 * (RTT_PAGE_LEVEL - level)


def level_size(level: int) -> int:
    """RttLevelSize (B3.68)."""
    return 1 << level_shift(level)


def addr_is_level_aligned(addr: int, level: int) -> bool:
    """AddrIsRttLevelAligned (B3.5)."""
    return addr & (level_size(level) - 1) == 0


def align_down(addr: int, level: int) -> int:
    """AlignDownToRttLevel (B3.7)."""
    return addr & ~(level_size(level) - 1)


def entry_index(addr: int, level: int) -> int:
    """RttEntryIndex (B3.60): index of ``addr``'s entry in a (single) level ``level`` RTT."""
    return (addr >> level_shift(level)) & (RTT_ENTRIES - 1)


def starting_level_rtts(ipa_width: int, level_start: int, lpa2: bool) -> int:
    """Number of concatenated starting-level RTTs that map ``ipa_width`` bits (VMSA, A5.5.3).

    The starting level resolves the IPA bits above ``level_shift(level_start)``: one RTT
    resolves 9 of them (4 at level -1). Concatenating up to 16 RTTs resolves 4 more; the VMSA
    allows that at levels 1 to 3, and at level 0 only with LPA2. Returns 0 where nothing fits.
    """
    bits = ipa_width - level_shift(level_start)
    if level_start == RTT_MIN_LEVEL_LPA2:
        max_bits = 4
    elif level_start > 0 or lpa2:
        max_bits = 9 + MAX_CONCATENATED_BITS
    else:
        max_bits = 9
    if not 1 <= bits <= max_bits:
        return 0
    return 1 << max(bits - 9, 0)


# -- the host's choices (Linux KVM for realms) ----------------------------------------------


def start_level(ipa_width: int) -> int:
    """The starting level KVM uses for an IPA width: as few levels as the width needs with up
    to 16 concatenated tables at the start (``stage2_pgtable_levels``: (bits - 4 - 4) / 9)."""
    return RTT_PAGE_LEVEL + 1 - (ipa_width - 8) // 9


def start_level_rtts(ipa_width: int) -> int:
    """How many concatenated RTTs KVM gives the starting level of :func:`start_level`."""
    extra_bits = ipa_width - level_shift(start_level(ipa_width) - 1)
    return 1 << extra_bits if extra_bits > 0 else 1


def block_level(addr: int, top: int, level_start: int) -> int:
    """The level of the largest RTT entry (not above ``level_start``) that is aligned at
    ``addr`` and ends at or below ``top``: KVM's ``find_map_level``, the level it creates
    tables down to before RMI_RTT_INIT_RIPAS or RMI_RTT_SET_RIPAS."""
    level = RTT_PAGE_LEVEL
    while level > level_start:
        size = level_size(level - 1)
        if addr % size or addr + size > top:
            break
        level -= 1
    return level


def blocks(base: int, top: int, level_start: int) -> list[tuple[int, int]]:
    """[base, top) as KVM covers it: the entries :func:`block_level` picks, in order."""
    out = []
    addr = base
    while addr < top:
        size = level_size(block_level(addr, top, level_start))
        out.append((addr, addr + size))
        addr += size
    return out
