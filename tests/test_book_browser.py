"""Every page of the built book in headless Chromium: no console errors, its tables and figures rendered,
no `<Figure size` text or traceback. Screenshots go to ``_build/screenshots/``.

The test reads the book `make book` built from this commit (``_build/notebook_times.json`` names it); it
does not build one, since that runs the whole study (minutes). Without such a build, or without Chromium
(``make browser-deps``), it skips, unless ``SCICLIP_REQUIRE_BOOK=1`` (set by ``.ci/run``, which runs
``make book`` before ``make test``) turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from sciclip_utils.notebooks import TIMES_FILE, git_commit

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"
SCREENSHOTS = REPO / "_build" / "screenshots"
MAX_SCREENSHOT_HEIGHT = 12_000


def _unavailable(reason: str) -> None:
    if os.environ.get("SCICLIP_REQUIRE_BOOK") == "1":
        pytest.fail(f"SCICLIP_REQUIRE_BOOK=1 but {reason}")
    pytest.skip(reason)


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


def _expected(source: Path) -> tuple[int, int]:
    """Tables and images the page must show: from the executed notebook's outputs and markdown, or the
    markdown page's table rules."""
    if source.suffix == ".md":
        lines = source.read_text().splitlines()
        return sum(1 for line in lines if line.startswith("|---") or line.startswith("| ---")), 0
    notebook = nbformat.read(source, as_version=4)
    tables = images = 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            tables += sum(1 for line in cell.source.splitlines() if line.startswith("|---"))
        elif "remove-output" not in cell.metadata.get("tags", []):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                tables += "<table" in data.get("text/html", "")
                images += "image/png" in data or "image/jpeg" in data
    return tables, images


@pytest.fixture(scope="module")
def browser() -> Any:
    record = json.loads((REPO / TIMES_FILE).read_text()) if (REPO / TIMES_FILE).is_file() else {}
    commit = git_commit(REPO)
    if not (HTML / "index.html").is_file() or record.get("html_commit") != commit:
        _unavailable(
            f"no book built from this commit ({commit}) in {HTML}: run `make book` first "
            f"(the last build was of {record.get('html_commit')})"
        )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if not (chromium and driver_path and webdriver):
        _unavailable("Chromium, chromedriver or selenium is missing: `make browser-deps`")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _source_of(page: str) -> Path:
    executed = REPO / f"{page}.ipynb"
    return executed if executed.is_file() else REPO / f"{page}.md"


@pytest.mark.parametrize("page", _toc_files())
def test_page_renders_completely(browser: Any, page: str) -> None:
    html = HTML / f"{page}.html"
    assert html.is_file(), f"{page} is in _toc.yml but was not built"
    browser.get_log("browser")  # drop messages of the previous page
    browser.get(html.as_uri())
    browser.execute_async_script(
        "const done = arguments[0];"
        "const images = [...document.images].map(i => i.complete ? null : new Promise(r => {"
        "  i.onload = i.onerror = r; }));"
        "Promise.all(images).then(() => done());"
    )
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors {errors}"
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
    )
    assert not broken, f"{page}: images that did not render: {broken}"
    text = browser.execute_script("return (document.querySelector('article') || document.body).textContent;")
    assert "<Figure size" not in text, f"{page}: a figure reached the page as text"
    assert "Traceback" not in text and not browser.execute_script(
        "return document.querySelectorAll('.output.error, .output.traceback, .output.stderr').length;"
    ), f"{page}: an error or stderr output is on the page"
    tables, images = _expected(_source_of(page))
    shown_tables = browser.execute_script(
        "return [...document.querySelectorAll('article table')].filter(t => t.rows.length > 0).length;"
    )
    shown_images = browser.execute_script(
        "return [...document.querySelectorAll('article .cell_output img')].filter(i => i.naturalWidth > 0).length;"
    )
    assert shown_tables >= tables, f"{page}: {shown_tables} tables shown, {tables} expected"
    assert shown_images >= images, f"{page}: {shown_images} figures shown, {images} expected"
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    browser.set_window_size(1280, min(max(height, 1000), MAX_SCREENSHOT_HEIGHT))
    screenshot = SCREENSHOTS / f"{page.replace('/', '_')}.png"
    assert browser.save_screenshot(str(screenshot)), f"{page}: no screenshot"
    browser.set_window_size(1280, 1000)
