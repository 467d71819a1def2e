"""How an RMI handler reports a failure condition (B1.6)."""

from __future__ import annotations

from ccasim.rmi.status import Status


class CommandFailure(Exception):
    """A failure pre-condition of the running command held.

    ``condition`` is the failure condition ID of the command definition (for example
    ``"rd_state"``), ``status`` and ``index`` are the return code the spec's post-condition
    gives (an RmiStatusCode with its index, an RsiCommandReturnCode, or a PsciReturnCode),
    and ``outputs`` are output registers X1.. that the spec defines even on failure (for
    example ``top`` of RMI_DATA_DESTROY).
    """

    __slots__ = ("condition", "index", "outputs", "status")

    def __init__(
        self,
        condition: str,
        status: int = Status.ERROR_INPUT,
        index: int = 0,
        outputs: tuple[int, ...] = (),
    ) -> None:
        super().__init__(condition)
        self.condition = condition
        self.status = status
        self.index = index
        self.outputs = outputs
