"""Exceptions a realm takes, raised inside the guest program at the ``yield`` that caused them."""


class RealmException(Exception):
    """An exception taken to the realm's EL1."""


class SynchronousExternalAbort(RealmException):
    """A Synchronous External Abort taken to the realm (A5.2.7: ESR_EL1.EA == 1).

    Raised for data access to a Protected IPA whose RIPAS is EMPTY, when the host injects an SEA
    after an exit for an Unprotected IPA, and for a granule protection fault.
    """

    def __init__(self, ipa: int, reason: str) -> None:
        super().__init__(f"synchronous external abort at IPA {ipa:#x}: {reason}")
        self.ipa = ipa
        self.reason = reason


class UndefinedInstruction(RealmException):
    """An Unknown exception taken to the realm (HVC in a realm, A4.5)."""
