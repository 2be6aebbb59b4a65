"""The editor with a large campaign: how long Chromium takes to open it and how smoothly a
node drags, against a real `campaign-canvas serve` process and the built UI.

A campaign of N nodes (default 200: a trigger, then filters whose "yes" customers get points
and whose "no" customers wait and go on) is created through the API; a headless system
Chromium (/usr/bin/chromium) logs in and then, `--runs` times:

- open: from navigation to the editor until all N nodes are on the canvas;
- drag: the node nearest the middle dragged 300 px in 30 pointer moves; frame times are read in the page with
  requestAnimationFrame while it moves (p50, p95, longest), plus the wall time of the drag;
- auto-layout: from the click until the nodes have moved.

    python bench/canvas_editor.py [--nodes 200] [--runs 3]

Needs `make ui` (canvas_ui/dist) and Debian's chromium. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runner import CLI, Server, api_key

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "bench-password-1"

FRAMES_JS = """() => { window.__frames = []; let last = performance.now();
  const tick = (t) => {
    window.__frames.push(t - last); last = t; if (window.__recording) requestAnimationFrame(tick); };
  window.__recording = true; requestAnimationFrame(tick); }"""


def campaign(size: int) -> dict[str, Any]:
    """A valid campaign of `size` nodes laid out top to bottom in two columns."""
    nodes = [{"id": "start", "type": "event_trigger", "settings": {"event": "signup"}, "position": {"x": 0, "y": 0}}]
    edges: list[dict[str, Any]] = []
    previous, row = "start", 1
    while len(nodes) + 3 <= size:
        check, points, wait = f"f{row}", f"p{row}", f"w{row}"
        x, y = (row // 10) * 700, (row % 10) * 360  # ten steps a column, then the next column
        nodes += [
            {"id": check, "type": "filter", "position": {"x": x, "y": y},
             "settings": {"rules": {"match": "all",
                                    "rules": [{"field": "attributes.vip", "op": "eq", "value": True}]}}},
            {"id": points, "type": "award_points", "settings": {"points": row},
             "position": {"x": x + 320, "y": y + 180}},
            {"id": wait, "type": "wait", "settings": {"amount": 1, "unit": "days"}, "position": {"x": x, "y": y + 180}},
        ]
        edges += [
            {"id": f"e{row}a", "source": previous, "source_port": "out", "target": check},
            {"id": f"e{row}b", "source": check, "source_port": "yes", "target": points},
            {"id": f"e{row}c", "source": check, "source_port": "no", "target": wait},
        ]
        previous, row = wait, row + 1
    while len(nodes) < size:
        node_id = f"tail{len(nodes)}"
        nodes.append({"id": node_id, "type": "award_points", "settings": {"points": 1},
                      "position": {"x": (row // 10 + 1) * 700, "y": 180 * (len(nodes) % 20)}})
        edges.append({"id": f"e_{node_id}", "source": previous, "source_port": "out", "target": node_id})
        previous = node_id
    return {"name": f"Benchmark: {size} nodes", "nodes": nodes, "edges": edges}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    with tempfile.TemporaryDirectory(prefix="cc-bench-canvas-") as instance:
        env = {**os.environ, "CC_INSTANCE_DIR": instance}
        env.setdefault("DATABASE_URL", f"sqlite:///{instance}/bench.db")
        key = api_key(env, "canvas benchmark")
        subprocess.run([CLI, "create-user", "bench", "--role", "admin", "--password", PASSWORD], env=env,
                       check=True, capture_output=True)
        with Server(env, workers=0) as server:
            made = httpx.post(server.base + "/api/campaigns", json=campaign(args.nodes),
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)
            made.raise_for_status()
            result = measure(server.base, made.json()["id"], args.nodes, args.runs)
    print(json.dumps({"benchmark": "canvas_editor", "nodes": args.nodes, "runs": args.runs, **result}))


def measure(base: str, campaign_id: int, size: int, runs: int) -> dict[str, Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(base + "/login")
        page.fill("input[name=username]", "bench")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=who]")
        opens, drags, layouts = [], [], []
        for _ in range(runs):
            opens.append(_open(page, f"{base}/campaigns/{campaign_id}", size))
            drags.append(_drag(page))
            layouts.append(_layout(page))
        browser.close()
    frames = [f for d in drags for f in d["frames"]]
    return {
        "open_ms": _summary([o for o in opens]),
        "drag_ms": _summary([d["wall_ms"] for d in drags]),
        "drag_frame_ms": {"p50": round(statistics.median(frames), 1), "p95": round(_p95(frames), 1),
                          "max": round(max(frames), 1), "frames": len(frames)},
        "auto_layout_ms": _summary(layouts),
    }


def _open(page: Page, url: str, size: int) -> float:
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('[data-testid=canvas-node]').length === {size}", timeout=60_000)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return (time.perf_counter() - started) * 1000


#: the id of the node nearest the middle of the canvas (one the pointer can reach)
MIDDLE_NODE_JS = """() => { const pane = document.querySelector('.react-flow').getBoundingClientRect();
  const cx = pane.x + pane.width / 2, cy = pane.y + pane.height / 2;
  let best = null, distance = Infinity;
  for (const n of document.querySelectorAll('[data-testid=canvas-node]')) {
    const b = n.getBoundingClientRect(), d = Math.hypot(b.x + b.width / 2 - cx, b.y + b.height / 2 - cy);
    if (d < distance) { best = n.dataset.nodeId; distance = d; } }
  return best; }"""


def _drag(page: Page) -> dict[str, Any]:
    node_id = page.evaluate(MIDDLE_NODE_JS)
    node = page.locator(f"[data-testid=canvas-node][data-node-id='{node_id}'] [data-testid=node-label]")
    box = node.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.evaluate(FRAMES_JS)
    started = time.perf_counter()
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 300, y + 40, steps=30)
    page.mouse.up()
    page.wait_for_function(f"() => {{ const b = document.querySelector(\"[data-node-id='{node_id}']\")"
                           f".getBoundingClientRect(); return b.x > {box['x'] + 200}; }}")
    wall = (time.perf_counter() - started) * 1000
    frames = page.evaluate("() => { window.__recording = false; return window.__frames.slice(1); }")
    return {"wall_ms": wall, "frames": frames}


def _layout(page: Page) -> float:
    before = page.locator("[data-node-id=p1]").bounding_box()
    started = time.perf_counter()
    page.get_by_role("button", name="Auto-layout").click()
    page.wait_for_function(f"() => {{ const b = document.querySelector('[data-node-id=p1]').getBoundingClientRect();"
                           f" return Math.abs(b.x - {before['x'] if before else 0}) > 1"
                           f" || Math.abs(b.y - {before['y'] if before else 0}) > 1; }}")
    return (time.perf_counter() - started) * 1000


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


if __name__ == "__main__":
    main()
