"""The Virtual Memory System Architecture as realms use it: 4 KiB granules and stage 2
descriptors (Arm ARM D8; RMM spec A2.2, A5.5.11)."""

GRANULE_SHIFT = 12
GRANULE_SIZE = 1 << GRANULE_SHIFT
GRANULE_MASK = GRANULE_SIZE - 1

#: Without FEAT_LPA2 an output address has 48 bits: a PA at or above this cannot be mapped.
PA_LIMIT_WITHOUT_LPA2 = 1 << 48

# Stage 2 block and page descriptor fields a host controls in an Unprotected mapping:
# MemAttr[2:0] at bits [4:2] and S2AP at bits [7:6].
DESC_MEMATTR_SHIFT = 2
DESC_MEMATTR = 0b111 << DESC_MEMATTR_SHIFT
S2AP_READ = 0b01 << 6
S2AP_WRITE = 0b10 << 6
DESC_S2AP = S2AP_READ | S2AP_WRITE
DESC_HOST_ATTRS = DESC_MEMATTR | DESC_S2AP
#: With FEAT_S2FWB, MemAttr 0b100 is reserved.
MEMATTR_RESERVED = 0b100
#: MemAttr Normal Write-Back (FEAT_S2FWB encoding 0b110, Linux's MT_S2_FWB_NORMAL).
MEMATTR_FWB_NORMAL = 0b110
#: Normal Write-Back with S2AP read/write: what KVM maps a realm's shared memory with
#: (``realm_map_non_secure``, seed 001-19).
DESC_NORMAL_RW = MEMATTR_FWB_NORMAL << DESC_MEMATTR_SHIFT | DESC_S2AP
#: With LPA2 (VTCR_EL2.DS == 1) a descriptor holds OA[51:50] in bits [9:8].
DESC_OA_HI_SHIFT = 8


def oa_bits(lpa2: bool) -> int:
    """How many bits of output address a descriptor holds in its low field."""
    return 50 if lpa2 else 48


def encode_oa(addr: int, lpa2: bool) -> int:
    """The output address field of a stage 2 descriptor for ``addr`` (LPA2 moves OA[51:50])."""
    if lpa2:
        return (addr & ((1 << 50) - 1)) | ((addr >> 50) & 0b11) << DESC_OA_HI_SHIFT
    return addr


def decode_oa(desc: int, lpa2: bool) -> int:
    """The output address in a stage 2 block or page descriptor (bits [47:12], or [49:12]
    and [9:8] with LPA2)."""
    low = desc & ((1 << oa_bits(lpa2)) - 1) & ~GRANULE_MASK
    return low | ((desc >> DESC_OA_HI_SHIFT) & 0b11) << 50 if lpa2 else low


def oa_field_mask(lpa2: bool) -> int:
    """The bits of a descriptor that hold the output address."""
    mask = ((1 << oa_bits(lpa2)) - 1) & ~GRANULE_MASK
    return mask | (0b11 << DESC_OA_HI_SHIFT if lpa2 else 0)
