"""Render the merged benchmark JSON as the Markdown the appendix includes (``book/bench_results.md``).

Run: ``.venv/bin/python benchmarks/render.py [RESULTS_JSON] [OUT_MD]`` (defaults: the committed copies).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchlib import REPO, Figure, format_value

RESULTS = REPO / "book" / "bench_results.json"
PAGE = REPO / "book" / "bench_results.md"


def cell(figure: Figure) -> tuple[str, str, str, str]:
    value = f"{format_value(figure.value)} {figure.unit}".strip()
    baseline = f"{format_value(figure.baseline)} ({figure.baseline_name})" if figure.baseline_name else ""
    ratio = f"{figure.ratio:.2f}×" if figure.ratio is not None else ""
    verdict = {True: "**met**", False: "**not met**", None: ""}[figure.met]
    return value, baseline, ratio, f"{figure.target.replace('<=', '≤').replace('>=', '≥')} {verdict}".strip()


def render(results: dict) -> str:
    """Markdown: where and when, then one table per script, its notes under it."""
    machine = results["machine"]
    lines = [
        f"Measured by `make bench` on {machine['time_utc']}: {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['python']}, {machine['platform']}; load average at the start "
        f"{', '.join(map(str, machine['load_average']))}. The whole run took {results['seconds']:.0f} s.",
        "",
    ]
    for script in results["scripts"]:
        lines.append(f"### `{script['script']}.py`")
        lines.append("")
        if script["figures"]:
            lines += [
                "| figure | value | baseline / floor (same run) | ratio | target |",
                "|---|---|---|---|---|",
            ]
            for raw in script["figures"]:
                figure = Figure(**raw)
                name = figure.name.strip() if not figure.name.startswith("  ") else f"… {figure.name.strip()}"
                note = f" ({figure.note})" if figure.note else ""
                lines.append(f"| {name}{note} | " + " | ".join(cell(figure)) + " |")
            lines.append("")
        lines += [f"- {note}" for note in script["notes"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else PAGE
    target.write_text(render(json.loads(source.read_text())))


if __name__ == "__main__":
    main()
