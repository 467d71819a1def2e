"""B4.3.5 RMI_GRANULE_DELEGATE and B4.3.6 RMI_GRANULE_UNDELEGATE."""

import pytest

from ccasim.hw import Pas
from ccasim.rmi import FID, Status
from support import DEVICE, DRAM0, SECURE, UNPOPULATED, Host, call_changes, expect_failure

INPUT = Status.ERROR_INPUT


@pytest.mark.parametrize(
    "addr, condition",
    [
        (DRAM0 + 0x100_0001, "gran_align"),
        (DRAM0 + 0x100_0800, "gran_align"),
        (UNPOPULATED, "gran_bound"),
        (SECURE, "gran_bound"),
        (DEVICE, "gran_bound"),
        (1 << 48, "gran_bound"),
        ((1 << 64) - 4096, "gran_bound"),
    ],
)
def test_delegate_failure_align_and_bound(addr, condition):
    """B4.3.5.2 gran_align, gran_bound."""
    expect_failure(Host(), FID.GRANULE_DELEGATE, (addr,), INPUT, 0, condition)


def test_delegate_failure_gran_state():
    """B4.3.5.2 gran_state: the granule is already delegated."""
    host = Host()
    pa = host.delegated()
    expect_failure(host, FID.GRANULE_DELEGATE, (pa,), INPUT, 0, "gran_state")


def test_delegate_failure_gran_gpt():
    """B4.3.5.2 gran_gpt: another agent (here the Secure world, via EL3) owns the granule."""
    host = Host()
    pa = host.alloc()
    assert host.m.lend_to_secure_world(pa) and host.m.granule_pas(pa) is Pas.SECURE
    expect_failure(host, FID.GRANULE_DELEGATE, (pa,), INPUT, 0, "gran_gpt")


def test_delegate_success_and_footprint():
    """B4.3.5.3: state DELEGATED and GPT_REALM; footprint gran_gpt, gran_state (plus scrub)."""
    host = Host()
    pa = host.alloc()
    host.m.ns_write(pa, b"secret")
    result, changed = call_changes(host, FID.GRANULE_DELEGATE, pa)
    assert result.ok
    assert host.m.granule_state(pa) == "DELEGATED"
    assert host.m.granule_pas(pa) is Pas.REALM
    assert changed == {("granule", pa), ("gpt", pa), ("mem", pa)}


@pytest.mark.parametrize(
    "addr, condition",
    [(DRAM0 + 0x100_0004, "gran_align"), (UNPOPULATED, "gran_bound"), (SECURE, "gran_bound")],
)
def test_undelegate_failure_align_and_bound(addr, condition):
    """B4.3.6.2 gran_align, gran_bound."""
    expect_failure(Host(), FID.GRANULE_UNDELEGATE, (addr,), INPUT, 0, condition)


@pytest.mark.parametrize("state", ["UNDELEGATED", "RD", "RTT"])
def test_undelegate_failure_gran_state(state):
    """B4.3.6.2 gran_state: only a DELEGATED granule can be undelegated."""
    host = Host()
    if state == "UNDELEGATED":
        pa = host.alloc()
    else:
        realm = host.realm()
        pa = realm.rd if state == "RD" else realm.params.rtt_base
    assert host.m.granule_state(pa) == state
    expect_failure(host, FID.GRANULE_UNDELEGATE, (pa,), INPUT, 0, "gran_state")


def test_undelegate_success_wipes_and_returns_to_ns():
    """B4.3.6.3 gran_gpt, gran_state, gran_content (A2.2.4 wiping)."""
    host = Host()
    realm = host.realm()
    data = host.data(realm, 0x1000, b"\x5a" * 4096)
    assert host.rmi.data_destroy(realm.rd, 0x1000).ok
    result, changed = call_changes(host, FID.GRANULE_UNDELEGATE, data)
    assert result.ok
    assert host.m.granule_state(data) == "UNDELEGATED"
    assert host.m.granule_pas(data) is Pas.NS
    assert host.m.ns_read(data, 4096) == bytes(4096)
    assert changed <= {("granule", data), ("gpt", data), ("mem", data)}


def test_delegate_undelegate_round_trip_leaves_no_trace():
    host = Host()
    pa = host.alloc()
    host.m.ns_write(pa, b"\xff" * 4096)
    assert host.rmi.granule_delegate(pa).ok and host.rmi.granule_undelegate(pa).ok
    assert host.m.ns_read(pa, 4096) == bytes(4096)
    assert host.m.granule_state(pa) == "UNDELEGATED"
