"""The RIM of a realm under construction: RMI_DATA_CREATE's extensions, completed in order
before anything observes the RIM.

RimExtendData (B3.44) chains every measured page into the RIM. The RMM records each
extension (the IPA, the flags and the page's contents, an immutable copy) and completes the
chain when the RIM is next read: by the RMM itself (RTT_INIT_RIPAS, REC_CREATE extend it
further; RSI_MEASUREMENT_READ and the attestation token report it), or by a debug view. What
is read is always the value the spec's step-by-step extension gives.

A realm with many pending pages has them hashed by a helper process
(:mod:`ccasim.rmm.hash_worker`) while the RMM goes on; if that process cannot be started or
fails, the RMM computes the chain itself from the recorded extensions. ``CCASIM_HASH_WORKER=0``
turns the helper off.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from ccasim.rmi import measurement
from ccasim.rmi.types import DATA_MEASURE_CONTENT, HashAlgorithm
from ccasim.rmm import hash_worker

if TYPE_CHECKING:
    from ccasim.rmm.realm import Realm

#: Pending measured pages of one realm after which the helper process takes over.
WORKER_AFTER = 4096

_worker: hash_worker.HashWorker | None = None
_worker_failed = False


def _live() -> hash_worker.HashWorker | None:
    """The helper, if it works and is this process's (not inherited through a fork)."""
    helper = _worker
    if helper is None or helper.broken or helper.pid != os.getpid():
        return None
    return helper


def worker() -> hash_worker.HashWorker | None:
    """The process's helper, started on first use; None where it cannot run."""
    global _worker, _worker_failed
    if _live() is not None:
        return _worker
    if _worker_failed or os.environ.get("CCASIM_HASH_WORKER", "1") == "0" or os.name != "posix":
        return None
    try:
        _worker = hash_worker.HashWorker(
            measurement.DATA_DESCRIPTOR.format,
            measurement.DESC_TYPE_DATA,
            measurement.DESCRIPTOR_SIZE,
            DATA_MEASURE_CONTENT,
            [algo.hashlib_name for algo in sorted(HashAlgorithm)],
        )
    except (OSError, ValueError, TypeError):  # no subprocess, no interpreter to run
        _worker_failed = True
        return None
    return _worker


def extend_data(realm: Realm, ipa: int, flags: int, content: bytes | None) -> None:
    """RimExtendData for ``realm``: recorded now, computed before the RIM is read.

    ``realm.rim_pending`` holds the extensions flat, three entries each (IPA, flags,
    contents): no object per page for the garbage collector to visit again and again."""
    pending = realm.rim_pending
    pending.append(ipa)
    pending.append(flags)
    pending.append(content)
    submitted = realm.rim_submitted
    if submitted < 0 or len(pending) - 3 * submitted < 3 * hash_worker.BATCH:
        return
    if submitted == 0:  # nothing on the helper yet: is it worth starting?
        if len(pending) < 3 * WORKER_AFTER:
            return
        helper = worker()
        if helper is None:
            return
        try:
            helper.start(realm.rim_key, realm.hash_algo, realm.rim_base)
        except hash_worker.WorkerError:
            return
    _submit(realm)


def _submit(realm: Realm) -> None:
    """Hand the helper the pending pages it does not have yet."""
    helper = _live()
    if helper is None:
        realm.rim_submitted = -1  # computed here at the next read
        return
    try:
        helper.submit(realm.rim_key, realm.rim_pending[3 * realm.rim_submitted :])
    except hash_worker.WorkerError:
        realm.rim_submitted = -1
        return
    realm.rim_submitted = len(realm.rim_pending) // 3


def complete(realm: Realm) -> None:
    """Apply every pending extension to the RIM (``realm.rim_base``), in order."""
    pending = realm.rim_pending
    rim = None
    helper = _live()
    if realm.rim_submitted > 0 and helper is not None:
        if 3 * realm.rim_submitted < len(pending):
            _submit(realm)
        if realm.rim_submitted > 0:
            try:
                rim = helper.query(realm.rim_key)
            except hash_worker.WorkerError:
                rim = None
    if rim is None:
        rim = realm.rim_base
        algo = realm.hash_algo
        for i in range(0, len(pending), 3):
            ipa, flags, content = pending[i : i + 3]
            rim = measurement.rim_extend_data(algo, rim, ipa, flags, content)  # type: ignore[arg-type]
    realm.rim_base = rim
    realm.rim_pending = []
    realm.rim_submitted = 0


def forget(realm: Realm) -> None:
    """The realm is destroyed: drop what is pending, and the helper's chain of it."""
    if realm.rim_submitted > 0 and _worker is not None and not _worker.broken:
        with contextlib.suppress(hash_worker.WorkerError):
            _worker.forget(realm.rim_key)
    realm.rim_pending = []
    realm.rim_submitted = 0
