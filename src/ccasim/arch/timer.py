"""The Generic Timer's EL1 virtual timer control register, CNTV_CTL_EL0 (Arm ARM D11)."""

CNT_CTL_ENABLE = 1 << 0
CNT_CTL_IMASK = 1 << 1
CNT_CTL_ISTATUS = 1 << 2
