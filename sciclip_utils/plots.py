"""Figures the notebooks show and the package draws: matplotlib figures rendered to images, image grids,
galleries of extracted pairs and ROC panels. matplotlib is imported lazily (headless: Agg canvases)."""

from __future__ import annotations

from typing import Any

from PIL import Image


def figure_image(fig: Any) -> Image.Image:
    """Rasterise a matplotlib Figure (Agg) to an RGB Pillow image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
