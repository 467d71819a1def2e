"""The GICv3 virtual CPU interface state a host may hand to a REC (A6.1, B3.18)."""

from __future__ import annotations

from ccasim.arch.gicv3 import LR_EOI, LR_HW, LR_PRIORITY_SHIFT, LR_STATE_SHIFT, LR_VINTID_MASK

# ICH_HCR_EL2 bits a host may set: UIE, LRENPIE, NPIE, VGrp0EIE, VGrp0DIE, VGrp1EIE,
# VGrp1DIE (bits 1-7) and TDIR (bit 14). En and EOIcount are the RMM's.
ICH_HCR_HOST_BITS = 0x40FE

LR_RESERVED_32_44 = ((1 << 13) - 1) << 32
PRIORITY_BITS = 5  # ICH_VTR_EL2.PRIbits + 1 on the modelled CPU
ID_BITS = 16  # ICH_VTR_EL2.IDbits == 0: 16-bit INTIDs


def vintid_is_valid(vintid: int) -> bool:
    """SGIs, PPIs and SPIs (0-1019) and LPIs (8192 up to the INTID width)."""
    return vintid <= 1019 or 8192 <= vintid < 1 << ID_BITS


def gicv3_config_is_valid(hcr: int, lrs: list[int], num_lrs: int) -> bool:
    """Gicv3ConfigIsValid (B3.18), as the reference RMM checks it.

    Only the first ``num_lrs`` list registers are used; an invalid (State == 0) one is ignored.
    A used one must not be a hardware interrupt, must leave reserved priority and [44:32]
    bits clear (except EOI), must name a valid vINTID and must not repeat another's vINTID.
    """
    if hcr & ~ICH_HCR_HOST_BITS:
        return False
    priority_res0 = ((1 << (8 - PRIORITY_BITS)) - 1) << LR_PRIORITY_SHIFT
    seen: set[int] = set()
    for lr in lrs[:num_lrs]:
        if lr >> LR_STATE_SHIFT == 0:
            continue
        vintid = lr & LR_VINTID_MASK
        if (
            lr & LR_HW
            or lr & priority_res0
            or lr & LR_RESERVED_32_44 & ~LR_EOI
            or not vintid_is_valid(vintid)
            or vintid in seen
        ):
            return False
        seen.add(vintid)
    return True
