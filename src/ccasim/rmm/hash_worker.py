"""A helper process that extends RIMs with measured pages while the RMM goes on.

Measuring a DATA granule (RimExtendData, B3.44) is two hashes: the page, then the 256-byte
descriptor that chains it into the RIM. In one Python process that hashing and the RMM's own
work take turns; here the RMM hands the pages of a realm under construction to a child
process that computes the chain while the next commands run, so that on two cores the build
costs little more than the RMM's own work. The RIM is the same: the child applies the very
descriptor layout and hash functions the RMM passes it, in order, and the RMM reads the chain
back (:meth:`HashWorker.query`) before anything can observe it (:mod:`ccasim.rmm.rim`).

This file runs as the child too (``python hash_worker.py ...``, by path, so that the child
imports nothing but the standard library). Protocol, over two pipes and a shared ring:

- the ring (a memfd or temporary file, mapped by both): SLOTS item headers (key, ipa, flags:
  three u64) then SLOTS pages;
- requests, fixed-size messages ``(command, count, key, algorithm, rim)``: START a chain for
  a key from a RIM; PROCESS items up to a count; QUERY a key's RIM once all items up to a
  count are processed; FORGET a key; EXIT;
- replies ``(count processed, rim)``, one per PROCESS (the rim zero) and per QUERY, read
  as they come so that the parent reuses ring slots as soon as the child is done with them.

The parent writes an item's header and page before the request that covers it, and reads a
result only after the reply that follows it: the pipes order the shared-memory accesses.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import mmap
import os
import select
import struct
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Callable
from typing import Any

SLOTS = 8192
BATCH = 256
PAGE = 4096
HEADER_WORDS = 3  # key, ipa, flags
HEADERS_SIZE = SLOTS * HEADER_WORDS * 8
RING_SIZE = HEADERS_SIZE + SLOTS * PAGE
MEASUREMENT_SIZE = 64

START, PROCESS, QUERY, EXIT, FORGET = 1, 2, 4, 5, 6
_REQUEST = struct.Struct("<BQQB64s")  # command, count, key, algorithm, rim
_REPLY = struct.Struct("<Q64s")  # items processed, rim (QUERY)
_ZERO_RIM = bytes(MEASUREMENT_SIZE)


class WorkerError(RuntimeError):
    """The helper process cannot go on (it exited, or a pipe broke)."""


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise WorkerError("the hash worker exited")
        data += chunk
    return data


class HashWorker:
    """The parent's side: submit measured pages of realms (by key), read the chains back.

    ``descriptor`` is the struct format of RmmMeasurementDescriptorData with its type and
    size, ``measure_flag`` the flags bit that means "content measured", ``hashes`` the
    hashlib names by RmiHashAlgorithm value.
    """

    def __init__(
        self,
        descriptor: str,
        desc_type: int,
        desc_size: int,
        measure_flag: int,
        hashes: list[str],
    ) -> None:
        self.pid = os.getpid()
        if hasattr(os, "memfd_create"):
            self._ring_fd = os.memfd_create("ccasim-rim-ring")
        else:  # pragma: no cover (other POSIX systems): an unlinked temporary file
            handle, path = tempfile.mkstemp(prefix="ccasim-rim-ring-")
            os.unlink(path)
            self._ring_fd = handle
        os.ftruncate(self._ring_fd, RING_SIZE)
        self._ring = mmap.mmap(self._ring_fd, RING_SIZE)
        self._view = memoryview(self._ring)
        req_r, self._req = os.pipe()
        self._resp, resp_w = os.pipe()
        argv = [sys.executable, "-I", "-S", __file__, str(self._ring_fd), str(req_r),
                str(resp_w), descriptor, str(desc_type), str(desc_size), str(measure_flag),
                ",".join(hashes)]  # fmt: skip
        try:
            self._child = subprocess.Popen(argv, pass_fds=(self._ring_fd, req_r, resp_w))
        except BaseException:
            self._view.release()
            self._ring.close()
            for fd in (req_r, resp_w, self._req, self._resp, self._ring_fd):
                os.close(fd)
            raise
        finally:
            if hasattr(self, "_child"):
                os.close(req_r)
                os.close(resp_w)
        self.submitted = 0  # items whose header and page are in the ring
        self.processed = 0  # items the child is known to have processed
        self._replies_due = 0
        self._inbox = b""
        self._rim = _ZERO_RIM  # of the last QUERY
        os.set_blocking(self._resp, False)
        self.broken = False
        atexit.register(self.close)

    # -- requests --------------------------------------------------------------------------

    def _request(self, command: int, count: int = 0, key: int = 0, algo: int = 0,
                 rim: bytes = _ZERO_RIM) -> None:  # fmt: skip
        try:
            os.write(self._req, _REQUEST.pack(command, count, key, algo, rim))
        except OSError as e:
            self.broken = True
            raise WorkerError(f"the hash worker is gone ({e})") from None

    def start(self, key: int, algo: int, rim: bytes) -> None:
        """Chain ``key``'s items from ``rim`` (items submitted later extend it in order)."""
        self._request(START, self.submitted, key, algo, rim)

    def submit(self, key: int, items: list[int | bytes | None]) -> None:
        """Measured DATA granules of the realm ``key``, flat: IPA, flags, contents if
        measured (else None), for each. Written in batches that never wrap the ring."""
        done = 0
        while done < len(items) // 3:
            room = SLOTS - self.submitted % SLOTS
            count = min(BATCH, room, len(items) // 3 - done)
            self._write(key, items[3 * done : 3 * (done + count)])
            done += count

    def _write(self, key: int, items: list) -> None:
        """Put ``items`` (flat, in consecutive slots) in the ring; ask the child to process
        them."""
        count = len(items) // 3
        self._receive()
        if self.submitted + count - self.processed > SLOTS:
            self._wait(lambda: self.submitted + count - self.processed <= SLOTS)
        headers = array("Q", [0]) * (3 * count)
        headers[0::3] = array("Q", [key]) * count
        headers[1::3] = array("Q", items[0::3])
        headers[2::3] = array("Q", items[1::3])
        view, slot = self._view, self.submitted % SLOTS
        start = slot * HEADER_WORDS * 8
        view[start : start + count * HEADER_WORDS * 8] = headers.tobytes()
        offset = HEADERS_SIZE + slot * PAGE
        for page in items[2::3]:
            if page is not None:
                view[offset : offset + PAGE] = page
            offset += PAGE
        self.submitted += count
        self._request(PROCESS, self.submitted)
        self._replies_due += 1

    def _receive(self) -> None:
        """Take the replies that have arrived (without waiting)."""
        while True:
            try:
                data = os.read(self._resp, 1 << 16)
            except BlockingIOError:
                return
            except OSError as e:
                self.broken = True
                raise WorkerError(f"the hash worker is gone ({e})") from None
            if not data:
                self.broken = True
                raise WorkerError("the hash worker exited")
            inbox = self._inbox + data
            whole = len(inbox) - len(inbox) % _REPLY.size
            for offset in range(0, whole, _REPLY.size):
                self.processed, self._rim = _REPLY.unpack_from(inbox, offset)
                self._replies_due -= 1
            self._inbox = inbox[whole:]

    def _wait(self, done: Callable[[], bool]) -> None:
        """Take replies, waiting for them, until ``done()``."""
        while True:
            self._receive()
            if done():
                return
            select.select([self._resp], [], [])

    def query(self, key: int) -> bytes:
        """The RIM of ``key`` once every item submitted so far is in it."""
        self._request(QUERY, self.submitted, key)
        self._replies_due += 1
        self._wait(lambda: self._replies_due == 0)
        return self._rim

    def forget(self, key: int) -> None:
        """Drop the chain of ``key`` (its realm is gone) once its items are processed."""
        self._request(FORGET, self.submitted, key)

    def close(self) -> None:
        if self._child.poll() is None and os.getpid() == self.pid:
            try:
                self._request(EXIT)
                self._child.wait(timeout=5)
            except (WorkerError, subprocess.TimeoutExpired):
                self._child.kill()
        for fd in (self._req, self._resp, self._ring_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.broken = True


# -- the child -------------------------------------------------------------------------------


def _child(argv: list[str]) -> None:
    ring_fd, req, resp = (int(a) for a in argv[:3])
    descriptor = struct.Struct(argv[3])
    desc_type, desc_size, measure_flag = int(argv[4]), int(argv[5]), int(argv[6])
    hashes = [getattr(hashlib, name) for name in argv[7].split(",")]
    ring = mmap.mmap(ring_fd, RING_SIZE)
    view = memoryview(ring)
    headers = view[:HEADERS_SIZE].cast("Q")
    pack = descriptor.pack
    chains: dict[int, tuple[Callable[..., Any], bytes]] = {}
    pending_forget: list[tuple[int, int]] = []  # (after this many items, drop this key)
    done = 0
    while True:
        message = _read_exactly(req, _REQUEST.size)
        command, count, key, algo, rim = _REQUEST.unpack(message)
        if command == EXIT:
            return
        if command == START:
            chains[key] = (hashes[algo], rim)
            continue
        if command == FORGET:
            pending_forget.append((count, key))
        for i in range(done, count):
            slot = i % SLOTS
            item_key, ipa, flags = headers[3 * slot : 3 * slot + 3]
            hash_fn, current = chains[item_key]
            if flags & measure_flag:
                page = view[HEADERS_SIZE + slot * PAGE : HEADERS_SIZE + (slot + 1) * PAGE]
                content = hash_fn(page).digest().ljust(MEASUREMENT_SIZE, b"\0")
            else:
                content = _ZERO_RIM
            desc = pack(desc_type, desc_size, current, ipa, flags, content)
            chains[item_key] = (hash_fn, hash_fn(desc).digest().ljust(MEASUREMENT_SIZE, b"\0"))
        done = max(done, count)
        while pending_forget and pending_forget[0][0] <= done:
            chains.pop(pending_forget.pop(0)[1], None)
        if command == PROCESS:
            os.write(resp, _REPLY.pack(done, _ZERO_RIM))
        elif command == QUERY:
            os.write(resp, _REPLY.pack(done, chains[key][1]))


if __name__ == "__main__":
    with contextlib.suppress(WorkerError, KeyboardInterrupt):
        _child(sys.argv[1:])
