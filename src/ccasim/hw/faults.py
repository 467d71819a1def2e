"""Faults raised by the memory system on an access that the hardware refuses."""


class MemoryFault(Exception):
    """An access to physical memory that the hardware refused."""

    def __init__(self, pa: int, message: str) -> None:
        super().__init__(f"{message} at PA {pa:#x}")
        self.pa = pa


class GranuleProtectionFault(MemoryFault):
    """A granule protection check failed: the granule belongs to another PAS (RME GPC fault)."""

    def __init__(self, pa: int, access_pas: object, granule_pas: object) -> None:
        super().__init__(
            pa, f"granule protection fault: {access_pas} access to a {granule_pas} granule"
        )
        self.access_pas = access_pas
        self.granule_pas = granule_pas


class ExternalAbort(MemoryFault):
    """An access to an address where nothing is populated (an external abort on real hardware)."""

    def __init__(self, pa: int) -> None:
        super().__init__(pa, "external abort: no memory or device")
