"""``ccasim run --report FILE.html``: one self-contained page with pictures of the run.

- **IPA map**: guest RAM, one row per 2 MiB (one level 3 RTT; coarser for big realms), one cell
  per granule: the RIPAS and RTT entry state of the Protected IPA beside those of its
  Unprotected (shared) alias.
- **RTT tree**: every RTT of the realm as an icicle (the starting level on top, each table
  spanning its children), with its entries by state on hover.
- **Granules**: the RMM's state of each granule of the physical memory the host delegated.
- **Timeline**: the REC exits of each vCPU over wall time, coloured by reason.

What is drawn is read before teardown from the machine's debug view of the RMM
(:meth:`ccasim.Machine.debug_state`) and from KVM's REC-exit tracepoint; the page carries
it as JSON and draws it with a small script on canvases (no network, no libraries).
"""

from __future__ import annotations

import base64
import html
import json
from bisect import bisect_right
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ccasim.arch.vmsa import GRANULE_SIZE as GRANULE
from ccasim.rmi.levels import level_size

if TYPE_CHECKING:
    from ccasim.cli.summary import Recorder
    from ccasim.machine import Machine
    from ccasim.vmm.run import RealmVmm

ROW_CELLS = 512  # one level 3 RTT: 2 MiB of 4 KiB granules
MAX_ROWS = 512
MAX_GRANULE_CELLS = 1 << 17
MAX_TREE_NODES = 4096
TIMELINE_BINS = 400

#: Cell codes of the IPA map (index into IPA_KINDS).
IPA_KINDS = [
    "UNASSIGNED EMPTY", "UNASSIGNED RAM", "UNASSIGNED DESTROYED",
    "ASSIGNED EMPTY", "ASSIGNED RAM", "ASSIGNED DESTROYED",
    "UNASSIGNED_NS", "ASSIGNED_NS", "no RTT (unmapped)",
]  # fmt: skip
IPA_CODES = {kind: code for code, kind in enumerate(IPA_KINDS)}
UNMAPPED = IPA_CODES["no RTT (unmapped)"]
GRANULE_KINDS = ["UNDELEGATED", "DELEGATED", "RD", "REC", "REC_AUX", "DATA", "RTT"]
GRANULE_CODES = {kind: code for code, kind in enumerate(GRANULE_KINDS)}


def capture(machine: Machine, vmm: RealmVmm) -> dict[str, Any]:
    """Everything the pictures need, read from the debug view while the realm still exists."""
    vm = vmm.vm
    if vm is None or vm.realm.rd is None:
        return {}
    state = machine.debug_state().rmm
    realm = state.realms[vm.realm.rd]
    shared_bit = 1 << (realm.ipa_width - 1)
    leaves: dict[int, tuple[int, str, str]] = {}  # IPA of an entry that is not TABLE -> it
    nodes: list[dict[str, Any]] = []
    column = [0]  # the icicle's next leaf column

    def walk(addr: int, level: int, ipa: int, depth: int) -> None:
        node: dict[str, Any] = {"addr": addr, "level": level, "ipa": ipa, "depth": depth}
        node["start"] = column[0]
        nodes.append(node)
        size = level_size(level)
        counts: Counter[str] = Counter()
        for i, e in enumerate(state.rtts[addr]):
            counts[e.state.value] += 1
            if e.state.value == "TABLE":
                walk(e.addr, level + 1, ipa + i * size, depth + 1)
            else:
                leaves[ipa + i * size] = (size, e.state.value, e.ripas.value)
        if column[0] == node["start"]:  # no table below: a column of its own
            column[0] += 1
        node["span"] = column[0] - node["start"]
        node["entries"] = dict(counts)

    start = realm.rtt_level_start
    top = len(state.rtts[realm.rtt_base]) * level_size(start)
    for i in range(realm.rtt_num_start):
        walk(realm.rtt_base + i * GRANULE, start, i * top, 0)

    base, size = vmm.launch.ram[0]
    cell = max(GRANULE, -(-size // (ROW_CELLS * MAX_ROWS)) // GRANULE * GRANULE)
    ipas = sorted(leaves)
    protected = _cells(ipas, leaves, base, size, cell, shared=False)
    unprotected = _cells(ipas, leaves, base | shared_bit, size, cell, shared=True)
    return {
        "ipa": {
            "base": base,
            "size": size,
            "cell": cell,
            "row": ROW_CELLS,
            "shared_bit": shared_bit,
            "ipa_width": realm.ipa_width,
            "protected": _b64(protected),
            "unprotected": _b64(unprotected),
            "kinds": IPA_KINDS,
        },
        "rtt": _tree(nodes),
        "granules": _granules(state.granules),
    }


def _cells(ipas: list[int], leaves: dict, base: int, size: int, cell: int, shared: bool) -> bytes:
    """One code per cell of [base, base + size): the entry covering the cell's first granule
    (``ipas``: the leaves' IPAs, sorted)."""
    out = bytearray()
    for addr in range(base, base + size, cell):
        i = bisect_right(ipas, addr) - 1
        code = UNMAPPED
        if i >= 0:
            ipa = ipas[i]
            span, state, ripas = leaves[ipa]
            if ipa <= addr < ipa + span:
                code = IPA_CODES[state if shared else f"{state} {ripas}"]
        out.append(code)
    return bytes(out)


def _tree(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The RTTs in walk order (a parent before its children), at most MAX_TREE_NODES."""
    levels = Counter(n["level"] for n in nodes)
    shown = nodes[:MAX_TREE_NODES]
    return {
        "nodes": [
            [n["depth"], n["level"], n["ipa"], n["addr"], n["start"], n["span"], n["entries"]]
            for n in shown
        ],
        "columns": max((n["start"] + n["span"] for n in nodes), default=1),
        "total": len(nodes),
        "per_level": {str(k): v for k, v in sorted(levels.items())},
    }


def _granules(granules: Any) -> dict[str, Any]:
    """Granule states over [lowest, highest] non-UNDELEGATED granule, in at most
    MAX_GRANULE_CELLS cells (a cell shows its most common state)."""
    if not granules:
        return {}
    low, high = min(granules), max(granules) + GRANULE
    per_cell = max(1, -(-(high - low) // GRANULE // MAX_GRANULE_CELLS))
    cells = -(-(high - low) // (GRANULE * per_cell))
    votes: list[Counter[int]] = [Counter() for _ in range(cells)]
    for pa, st in granules.items():
        votes[(pa - low) // GRANULE // per_cell][GRANULE_CODES[st.value]] += 1
    codes = bytearray()
    for c in votes:
        delegated = sum(c.values())
        codes.append(c.most_common(1)[0][0] if delegated * 2 > per_cell else 0)
    counts = Counter(st.value for st in granules.values())
    return {
        "base": low,
        "per_cell": per_cell,
        "cells": _b64(bytes(codes)),
        "kinds": GRANULE_KINDS,
        "counts": dict(counts),
    }


def _timeline(recorder: Recorder) -> dict[str, Any]:
    times, vcpus, kinds = recorder.exit_times, recorder.exit_vcpus, recorder.exit_kinds
    names = sorted(recorder.kinds, key=recorder.kinds.__getitem__)
    if not times:
        return {"vcpus": 0, "kinds": names, "bins": []}
    t0, t1 = times[0], times[-1]
    span = max(t1 - t0, 1e-9)
    rows = max(vcpus) + 1
    bins = [[[0] * len(names) for _ in range(TIMELINE_BINS)] for _ in range(rows)]
    for t, v, k in zip(times, vcpus, kinds, strict=True):
        b = min(int((t - t0) / span * TIMELINE_BINS), TIMELINE_BINS - 1)
        bins[v][b][k] += 1
    return {"vcpus": rows, "kinds": names, "bins": bins, "seconds": span, "exits": len(times)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_report(path: str, report: dict[str, Any], recorder: Recorder) -> None:
    data = dict(recorder.snapshot or {})
    data["timeline"] = _timeline(recorder)
    page = render(report, data)
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as e:
        raise click.ClickException(f"cannot write report {path}: {e.strerror}") from None


def render(report: dict[str, Any], data: dict[str, Any]) -> str:
    """The HTML page: the summary as tables, the pictures as canvases drawn from ``data``."""
    r = report["realm"]
    e = html.escape
    token = report["token"]
    verdict = "none handed over" if token is None else "verified" if token["ok"] else "FAILED"
    rows = [
        ("Realm", f"{r['ram_size'] >> 20} MiB at {r['ram_base']:#x}, {r['vcpus']} vCPU(s), "
                  f"IPA {r['ipa_bits']} bits, {r['hash_algo']}"),
        ("Guest", f"{r['guest']['program']} from {r['guest']['source']}"),
        ("Ended", report["ended"] + (f" — {report['error']}" if report["error"] else "")),
        ("Attestation token", verdict),
        ("Wall time", f"{report['wall_time']['total']:.2f} s"),
    ]  # fmt: skip
    rows += [(name, value) for name, value in report["measurements"].items()]
    summary = "".join(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in rows)
    checks = ""
    if token is not None:
        checks = "".join(
            f"<tr class={'pass' if c['ok'] else 'fail'}><td>{'PASS' if c['ok'] else 'FAIL'}</td>"
            f"<td>{e(c['name'])}</td><td><code>{e(c['detail'])}</code></td></tr>"
            for c in token["checks"]
        )
    counts = "".join(
        f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in report["rmi_calls"].items()
    )
    exits = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in report["rec_exits"].items())
    console = e(report["console"])
    payload = json.dumps(data).replace("</", "<\\/")
    return (
        PAGE.replace("{{title}}", e(f"ccasim run: {r['guest']['program']}"))
        .replace("{{summary}}", summary)
        .replace("{{checks}}", checks)
        .replace("{{rmi}}", counts)
        .replace("{{exits}}", exits)
        .replace("{{console}}", console)
        .replace("{{data}}", payload)
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 2px 10px 2px 0; }
code { font-size: 12px; word-break: break-all; } .pass td:first-child { color: #1a7f37; }
.fail td:first-child { color: #c00; font-weight: bold; }
.cols { display: flex; gap: 3em; flex-wrap: wrap; } pre { background: #f6f6f6; padding: 1em; }
.legend span { display: inline-block; margin-right: 1em; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: middle; border: 1px solid #999; }
canvas { border: 1px solid #ddd; image-rendering: pixelated; }
#tip { position: fixed; background: #333; color: #fff; padding: 4px 8px; font-size: 12px;
  border-radius: 3px; pointer-events: none; display: none; white-space: pre; }
</style></head><body>
<h1>{{title}}</h1>
<section id="summary"><table>{{summary}}</table></section>
<section id="token"><h2>Attestation token</h2><table>{{checks}}</table></section>
<section id="ipa-map"><h2>IPA map</h2>
<p>Guest RAM: the Protected IPA (RIPAS and RTT entry) beside its Unprotected alias; one row
per <span id="ipa-row"></span>, one cell per <span id="ipa-cell"></span>.</p>
<div class="cols"><div><h3>Protected</h3><canvas id="ipa-protected"></canvas></div>
<div><h3>Unprotected (shared)</h3><canvas id="ipa-unprotected"></canvas></div></div>
<div class="legend" id="ipa-legend"></div></section>
<section id="rtt-tree"><h2>RTT tree</h2><p id="rtt-caption"></p>
<canvas id="rtt"></canvas><div class="legend" id="rtt-legend"></div></section>
<section id="granules"><h2>Granules</h2><p id="granule-caption"></p>
<canvas id="granule-map"></canvas><div class="legend" id="granule-legend"></div></section>
<section id="timeline"><h2>Timeline of REC exits</h2><p id="timeline-caption"></p>
<canvas id="timeline-map"></canvas><div class="legend" id="timeline-legend"></div></section>
<section id="counts"><h2>Counts</h2><div class="cols">
<div><h3>RMI calls</h3><table>{{rmi}}</table></div>
<div><h3>REC exits</h3><table>{{exits}}</table></div></div></section>
<section id="console"><h2>Console</h2><pre>{{console}}</pre></section>
<div id="tip"></div>
<script type="application/json" id="data">{{data}}</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const painted = {};
const tip = document.getElementById("tip");
const hex = (n) => "0x" + n.toString(16);
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const size = (n) => n >= 2 ** 30 ? n / 2 ** 30 + " GiB" : n >= 2 ** 20 ? n / 2 ** 20 + " MiB"
  : n / 1024 + " KiB";
const PALETTE = ["#e0e0e0", "#b7e4c7", "#f4a3a3", "#f9c74f", "#2d6a4f", "#c0392b",
  "#cfe2f3", "#1f6fb2", "#ffffff", "#8e44ad", "#f39c12", "#16a085", "#7f8c8d"];
function legend(id, kinds, colours) {
  document.getElementById(id).innerHTML = kinds.map((k, i) =>
    `<span><i style="background:${colours[i]}"></i>${k}</span>`).join("");
}
function hover(canvas, describe) {
  canvas.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect();
    const text = describe((ev.clientX - r.left) * canvas.width / r.width,
                          (ev.clientY - r.top) * canvas.height / r.height);
    tip.style.display = text ? "block" : "none";
    tip.textContent = text || "";
    tip.style.left = ev.clientX + 12 + "px"; tip.style.top = ev.clientY + 12 + "px";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
}
function countInk(canvas, background) {
  const ctx = canvas.getContext("2d");
  const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i] !== background[0] || px[i + 1] !== background[1] || px[i + 2] !== background[2]) n++;
  }
  return n;
}
function grid(canvas, codes, perRow, scale, colours) {
  const rows = Math.ceil(codes.length / perRow);
  canvas.width = perRow * scale; canvas.height = rows * scale;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  codes.forEach((c, i) => {
    ctx.fillStyle = colours[c];
    ctx.fillRect((i % perRow) * scale, Math.floor(i / perRow) * scale, scale, scale);
  });
  return rows;
}
if (D.ipa) {
  const m = D.ipa;
  document.getElementById("ipa-row").textContent = size(m.cell * m.row);
  document.getElementById("ipa-cell").textContent = size(m.cell);
  for (const [id, b64, base] of [["ipa-protected", m.protected, m.base],
                                 ["ipa-unprotected", m.unprotected, m.base + m.shared_bit]]) {
    const canvas = document.getElementById(id), codes = bytes(b64);
    grid(canvas, codes, m.row, 1, PALETTE);
    hover(canvas, (x, y) => {
      const i = Math.floor(y) * m.row + Math.floor(x);
      return i < codes.length ? `IPA ${hex(base + i * m.cell)}\\n${m.kinds[codes[i]]}` : "";
    });
    painted[id] = countInk(canvas, [255, 255, 255]);
  }
  legend("ipa-legend", m.kinds, PALETTE);
}
if (D.rtt) {
  const t = D.rtt, canvas = document.getElementById("rtt");
  const depth = Math.max(...t.nodes.map((n) => n[0])) + 1;
  const width = 1100, rowH = 36, columns = t.columns;
  canvas.width = width; canvas.height = depth * rowH;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, width, canvas.height);
  const boxes = [];
  const levelColour = { "-1": "#6c5ce7", "0": "#0984e3", "1": "#00b894", "2": "#fdcb6e",
    "3": "#e17055" };
  for (const n of t.nodes) {
    const [d, level, ipa, addr, start, span, entries] = n;
    const x = start / columns * width, w = Math.max(span / columns * width, 1);
    ctx.fillStyle = levelColour[level];
    ctx.fillRect(x, d * rowH + 2, w > 3 ? w - 1 : w, rowH - 4);
    boxes.push([x, d * rowH, w, n]);
  }
  hover(canvas, (x, y) => {
    const b = boxes.find(([bx, by, bw]) => x >= bx && x < bx + bw && y >= by && y < by + rowH);
    if (!b) return "";
    const [d, level, ipa, addr, start, span, entries] = b[3];
    const e = Object.entries(entries).map(([k, v]) => `${k}: ${v}`).join(", ");
    return `level ${level} RTT at PA ${hex(addr)}\\nfrom IPA ${hex(ipa)}\\n${e}`;
  });
  document.getElementById("rtt-caption").textContent =
    `${t.total} RTTs (per level: ${Object.entries(t.per_level).map(([l, n]) =>
      `level ${l}: ${n}`).join(", ")})` + (t.total > t.nodes.length
      ? `; the first ${t.nodes.length} drawn` : "") + ". Each table spans its children.";
  legend("rtt-legend", Object.keys(levelColour).map((l) => "level " + l),
    Object.values(levelColour));
  painted.rtt = countInk(canvas, [255, 255, 255]);
}
if (D.granules && D.granules.cells) {
  const g = D.granules, canvas = document.getElementById("granule-map"), codes = bytes(g.cells);
  const colours = ["#eeeeee", "#95a5a6", "#8e44ad", "#e67e22", "#f1c40f", "#27ae60", "#2980b9"];
  const perRow = 512, scale = codes.length <= 32768 ? 2 : 1;
  grid(canvas, codes, perRow, scale, colours);
  hover(canvas, (x, y) => {
    const i = Math.floor(y / scale) * perRow + Math.floor(x / scale);
    return i < codes.length ? `PA ${hex(g.base + i * g.per_cell * 4096)}\\n${g.kinds[codes[i]]}`
      : "";
  });
  document.getElementById("granule-caption").textContent =
    `Physical memory from ${hex(g.base)}, one cell per ${g.per_cell} granule(s): ` +
    Object.entries(g.counts).map(([k, v]) => `${k} ${v}`).join(", ") + ".";
  legend("granule-legend", g.kinds, colours);
  painted["granule-map"] = countInk(canvas, [255, 255, 255]);
}
if (D.timeline && D.timeline.vcpus) {
  const t = D.timeline, canvas = document.getElementById("timeline-map");
  const bins = t.bins[0].length, rowH = t.vcpus > 16 ? 6 : 18, colW = 2, left = 60;
  canvas.width = left + bins * colW; canvas.height = t.vcpus * rowH;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  let peak = 1;
  const sum = (b) => b.reduce((s, n) => s + n);
  t.bins.forEach((row) => row.forEach((b) => { peak = Math.max(peak, sum(b)); }));
  t.bins.forEach((row, v) => {
    if (rowH >= 12) { ctx.fillStyle = "#333"; ctx.fillText("vCPU " + v, 2, v * rowH + 13); }
    row.forEach((b, i) => {
      const total = b.reduce((s, n) => s + n);
      if (!total) return;
      const top = b.indexOf(Math.max(...b));
      ctx.globalAlpha = 0.35 + 0.65 * Math.min(1, Math.log1p(total) / Math.log1p(peak));
      ctx.fillStyle = PALETTE[(top + 3) % PALETTE.length];
      ctx.fillRect(left + i * colW, v * rowH + 1, colW, rowH - 2);
      ctx.globalAlpha = 1;
    });
  });
  hover(canvas, (x, y) => {
    const v = Math.floor(y / rowH), i = Math.floor((x - left) / colW);
    if (v >= t.vcpus || i < 0 || i >= bins) return "";
    const b = t.bins[v][i];
    const parts = t.kinds.map((k, j) => b[j] ? `${k}: ${b[j]}` : "").filter(Boolean);
    return `vCPU ${v}, ${(i * t.seconds / bins).toFixed(3)} s\\n` + (parts.join("\\n") || "idle");
  });
  document.getElementById("timeline-caption").textContent =
    `${t.exits} REC exits over ${t.seconds.toFixed(3)} s; each column ${(
      t.seconds / bins * 1000).toFixed(2)} ms, coloured by its most common reason.`;
  legend("timeline-legend", t.kinds, t.kinds.map((k, j) => PALETTE[(j + 3) % PALETTE.length]));
  painted["timeline-map"] = countInk(canvas, [255, 255, 255]);
}
document.body.dataset.painted = JSON.stringify(painted);
</script></body></html>
"""
