"""Exceptions a program takes, raised inside it at the ``yield`` that caused them."""


class GuestException(Exception):
    """An exception taken to the software's EL1."""


class SynchronousExternalAbort(GuestException):
    """A Synchronous External Abort (ESR_EL1.EA == 1; in a realm, A5.2.7).

    In a realm: a data access to a Protected IPA whose RIPAS is EMPTY, an SEA the host injects
    after an exit for an Unprotected IPA, and a granule protection fault.
    """

    def __init__(self, ipa: int, reason: str) -> None:
        super().__init__(f"synchronous external abort at IPA {ipa:#x}: {reason}")
        self.ipa = ipa
        self.reason = reason


class UndefinedInstruction(GuestException):
    """An Unknown exception: an instruction the PE does not execute at this EL (HVC in a
    realm, A4.5), or something yielded that is not an action."""
