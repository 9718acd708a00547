"""Render a page in headless Chromium (installed by `make setup`) and measure it as a reader's window sees it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

WINDOW = (1400, 2400)

# Run after the page (and every image in it) has loaded: the window's width, every element whose right edge
# lies past it (a table wider than the page), and every image that did not decode.
PROBE = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .map((e) => e.tagName + ": " + (e.textContent || "").slice(0, 60));
  const images = [...document.images];
  const out = document.createElement("pre");
  out.id = "qrobust-probe";
  out.textContent = JSON.stringify({
    width, wide, images: images.length,
    broken: images.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.alt),
  });
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `make setup` installs Debian's chromium package"
    return found


def probe(page: Path, tmp_path: Path) -> dict:
    """Load ``page`` (a copy beside it, with the probe appended) in a window of WINDOW pixels."""
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}",
             f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    finally:
        copy.unlink()
    found = re.search(r'<pre id="qrobust-probe">(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading in Chromium:\n{dom[:2000]}"
    return json.loads(
        found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )


def assert_reads_in_the_window(page: Path, tmp_path: Path, *, images: int) -> dict:
    """Every image decodes and nothing is wider than the window."""
    seen = probe(page, tmp_path)
    assert seen["images"] == images and not seen["broken"], seen
    assert not seen["wide"], f"wider than the {seen['width']}-pixel window: {seen['wide'][:5]}"
    return seen
