"""Sphinx extension for the book (``_config.yml``: ``sphinx: extra_extensions``).

Jupyter Book 1.x registers sphinx-thebe's and sphinx-togglebutton's inline scripts twice per page (once with the
file name ``None``, once with ``""``); the second
``const THEBE_JS_URL`` is a JavaScript SyntaxError in every page's console. Each script is kept once.
"""

from __future__ import annotations

from typing import Any


def _script_key(script: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    attributes = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script) or ""), tuple(
        sorted((k, str(v)) for k, v in attributes.items())
    )


def unique_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Drop repeated entries (same file or body, same attributes) from the page's ``script_files``."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", unique_scripts, priority=900)  # after the themes add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
