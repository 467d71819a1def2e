"""The GICv3 virtual CPU interface registers a hypervisor programs (Arm GIC architecture
specification, IHI 0069: ICH_LR<n>_EL2, ICH_HCR_EL2)."""

# ICH_LR<n>_EL2
LR_STATE_SHIFT = 62
LR_PENDING = 0b01
LR_ACTIVE = 0b10
LR_HW = 1 << 61
LR_PRIORITY_SHIFT = 48
LR_EOI = 1 << 41
LR_VINTID_MASK = 0xFFFF_FFFF

# ICH_HCR_EL2.EOIcount, bits [31:27]
HCR_EOICOUNT_SHIFT = 27
HCR_EOICOUNT_MASK = 0x1F << HCR_EOICOUNT_SHIFT

#: The INTID an acknowledge returns when no interrupt is pending.
SPURIOUS_INTID = 1023
