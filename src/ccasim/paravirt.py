"""The paravirtual interface between ccasim's realm guest kernel (:mod:`ccasim.guest.kernel`)
and ccasim's VMM (:mod:`ccasim.vmm.run`): what the guest finds in the device tree besides
kvmtool's 8250 UART, and the host calls it makes. Both sides take the numbers from here.

RMM 1.0 has no device assignment, so the realm reaches the VMM through emulated MMIO (the
Unprotected alias of a device) and RSI_HOST_CALL (forwarded to the VMM by KVM's SMCCC filter).
"""

#: ``ccasim,shared-console``: the IPA of a shared buffer, then a doorbell taking the number of
#: bytes to print from it.
CONSOLE_BUFFER = 0x0
CONSOLE_DOORBELL = 0x8

#: The 8250 registers the VMM answers: THR (write) and LSR (read; transmitter empty).
UART_THR, UART_LSR, UART_LSR_EMPTY = 0, 5, 0x60

#: Host calls, vendor hypervisor service SMCCC function IDs. BUFFER hands the VMM a buffer a
#: page at a time (X1 its shared IPA, X2 the length, X3 the offset in the whole, X4 the
#: whole's length), e.g. an attestation token for it to check. CHALLENGE asks for an
#: attestation challenge (X1 the shared IPA of a buffer, X2 its size): X0 0 and X1 the
#: challenge's length when the VMM wrote one.
HOST_CALL_BUFFER = 0xC600_0010
HOST_CALL_CHALLENGE = 0xC600_0011
HOST_CALLS = 2  # the number of consecutive function IDs from HOST_CALL_BUFFER
