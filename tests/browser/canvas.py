"""What the browser tests do on the editor, written once: open it, drop nodes from the
palette, connect handles with the mouse, read what the canvas shows."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

NODE = "[data-testid=canvas-node]"


def open_editor(page: Page, base: str, campaign_id: int | str = "new") -> None:
    page.goto(f"{base}/campaigns/{campaign_id}")
    expect(page.get_by_test_id("editor")).to_be_visible()


def node(page: Page, node_id: str) -> Locator:
    return page.locator(f"{NODE}[data-node-id='{node_id}']")


def node_ids(page: Page, node_type: str | None = None) -> list[str]:
    selector = f"{NODE}[data-node-type='{node_type}']" if node_type else NODE
    return [n.get_attribute("data-node-id") or "" for n in page.locator(selector).all()]


def drop(page: Page, node_type: str, x: float, y: float) -> str:
    """Drag a node type from the palette to (x, y) of the canvas; the new node's id."""
    before = set(node_ids(page, node_type))
    page.locator(f"[data-testid=palette-item][data-node-type='{node_type}']").drag_to(
        page.locator(".react-flow__pane"), target_position={"x": x, "y": y})
    expect(page.locator(f"{NODE}[data-node-type='{node_type}']")).to_have_count(len(before) + 1)
    (new,) = set(node_ids(page, node_type)) - before
    return new


def connect(page: Page, source: str, port: str, target: str) -> None:
    """Press on the source node's port handle, move to the target's input handle, release."""
    start = _centre(page.locator(f".react-flow__handle.source[data-nodeid='{source}'][data-handleid='{port}']"))
    end = _centre(page.locator(f".react-flow__handle.target[data-nodeid='{target}']"))
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()


def edges(page: Page) -> Locator:
    return page.locator(".react-flow__edge")


def select(page: Page, node_id: str, *, add: bool = False) -> None:
    """Click a node (by its title: the handles and ports are for connecting)."""
    node(page, node_id).get_by_test_id("node-label").click(modifiers=["Shift"] if add else [])


def field(page: Page, path: str) -> Locator:
    """A settings form field by its path in the settings (`content.body`)."""
    return page.locator(f"[data-testid=settings-panel] [id='settings.{path}']")


def expect_no_errors(page: Page) -> None:
    expect(page.get_by_test_id("problem-count")).to_contain_text("no errors", timeout=10_000)


def _centre(locator: Locator) -> tuple[float, float]:
    box: Any = locator.bounding_box()
    assert box, f"{locator} is not on screen"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
