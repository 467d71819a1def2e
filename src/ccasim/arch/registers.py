"""General-purpose registers: 64 bits wide (AArch64)."""

MASK64 = (1 << 64) - 1


def signed64(value: int) -> int:
    """A register value read as a two's complement Int64 (B4.4: Int64 arguments)."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value
