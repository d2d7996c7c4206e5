"""Web-style images of the sample corpus: shapes, colours, scenes, textures, printed digits and web charts.

``sample_natural`` draws one image's content, ``natural_image`` renders it (Pillow, 2x supersampled) and
``alt_text`` writes a short web alt text; a share of alt texts is noise (file names, "click here", shop
slogans), as in web crawls. The natural eval sets (shapes, colours, digits) use the same generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle", "star", "hexagon")
COLOURS = {
    "red": (214, 38, 38), "orange": (245, 135, 25), "yellow": (238, 212, 40), "green": (46, 158, 64),
    "blue": (38, 86, 214), "purple": (126, 52, 170), "pink": (238, 128, 186), "brown": (118, 74, 38),
}  # fmt: skip
BACKGROUNDS = {
    "white": (246, 246, 246),
    "gray": (150, 150, 150),
    "black": (22, 22, 22),
    "beige": (226, 214, 188),
}
# Digits are 30 % of the pool: ten classes told apart by glyph shape alone need more pairs than colours do
# before the tiny model (30k samples seen) learns them; measured at tiny, one seed: digits acc 0.26 at 0.24,
# 0.40 at 0.30 (coloured digits at 0.16 sat at chance).
KIND_WEIGHTS = {"shape": 0.46, "scene": 0.06, "texture": 0.06, "digit": 0.30, "chart": 0.05, "photo": 0.07}
NOISE_CAPTIONS = (
    "IMG_{n}.JPG", "DSC{n}", "click here", "Buy now - free shipping!", "image", "untitled", "thumbnail",
    "product photo", "home decor ideas", "best price guaranteed", "screenshot", "logo", "photo {n}",
    "new arrivals {year}", "download", "see more", "img{n}.png", "sale", "Copyright {year}", "header background",
)  # fmt: skip
SIDE = 128


@dataclass(frozen=True)
class NaturalSpec:
    """Every random choice of one web-style image."""

    kind: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)


def sample_natural(rng: np.random.Generator, kind: str | None = None) -> NaturalSpec:
    """Draw one web-style image; ``kind`` is one of KIND_WEIGHTS (drawn by weight when None)."""
    if kind is None:
        kind = str(rng.choice(list(KIND_WEIGHTS), p=list(KIND_WEIGHTS.values())))
    colour, other = (str(c) for c in rng.choice(list(COLOURS), 2, replace=False))
    p: dict[str, Any] = {"colour": colour, "other": other}
    if kind == "shape":
        background = str(
            rng.choice(["white", "gray", "black", "beige", "gradient", "noise", "other", "field", "field"])
        )
        p.update(
            shape=str(rng.choice(SHAPES)),
            background=background,
            size=float(rng.uniform(0.45, 0.75)),
            centre=[float(v) for v in rng.uniform(0.3, 0.7, 2)],
            angle=float(rng.uniform(0, 360)),
            distractors=int(rng.choice([0, 0, 0, 0, 1])),
        )
    elif kind == "scene":
        p.update(scene=str(rng.choice(["house", "tree", "sunset", "balloon"])))
    elif kind == "texture":
        p.update(
            pattern=str(rng.choice(["striped", "checkered", "polka dot"])), period=int(rng.integers(8, 28))
        )
    elif kind == "digit":  # printed like house numbers and signs: dark ink on a light tint, or light on dark
        p.update(digit=int(rng.integers(10)), tone=str(rng.choice(["light", "light", "light", "dark"])))
    elif kind == "chart":
        p.update(chart=str(rng.choice(["bars", "pie", "growth"])))
    elif kind != "photo":
        raise ValueError(f"unknown web image kind {kind!r}")
    return NaturalSpec(kind, int(rng.integers(2**31)), p)


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    corners = {"square": 4, "triangle": 3, "hexagon": 6, "star": 10}[shape]
    theta = np.deg2rad(angle) + np.arange(corners) * 2 * np.pi / corners
    radius = np.where(np.arange(corners) % 2, r * 0.45, r) if shape == "star" else np.full(corners, r)
    return [
        (float(cx + q * np.cos(t)), float(cy + q * np.sin(t))) for q, t in zip(radius, theta, strict=True)
    ]


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float, fill: Any
) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(_polygon(shape, cx, cy, r * (1.15 if shape == "square" else 1.0), angle), fill=fill)


def _jitter(
    rng: np.random.Generator, colour: tuple[int, int, int], amount: float = 18
) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in colour)
    return r, g, b


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans-Bold.ttf", size)


def natural_image(spec: NaturalSpec) -> Image.Image:
    """Render a web-style image (RGB, SIDE x SIDE)."""
    rng = np.random.default_rng(spec.seed)
    p = spec.params
    big = SIDE * 2
    main, other = _jitter(rng, COLOURS[p["colour"]], 12), _jitter(rng, COLOURS[p["other"]], 12)
    image = Image.new("RGB", (big, big), _jitter(rng, BACKGROUNDS["white"], 6))
    draw = ImageDraw.Draw(image)
    if spec.kind == "shape":
        _background(image, draw, rng, p["background"], other)
        for _ in range(p["distractors"]):
            gray = int(rng.uniform(90, 200))
            cx, cy = rng.uniform(0.1, 0.9, 2) * big
            _draw_shape(draw, str(rng.choice(SHAPES)), cx, cy, big * 0.08, rng.uniform(0, 360), (gray,) * 3)
        cx, cy = (v * big for v in p["centre"])
        _draw_shape(draw, p["shape"], cx, cy, big * p["size"] / 2, p["angle"], main)
    elif spec.kind == "scene":
        _scene(draw, rng, p["scene"], main, other, big)
    elif spec.kind == "texture":
        period = p["period"] * 2
        for a in range(0, big, period):
            for b in range(0, big, period):
                if p["pattern"] == "striped":
                    draw.rectangle((a, 0, a + period // 2, big), fill=main)
                elif p["pattern"] == "checkered" and (a // period + b // period) % 2:
                    draw.rectangle((a, b, a + period, b + period), fill=main)
                elif p["pattern"] == "polka dot":
                    draw.ellipse(
                        (a + period * 0.2, b + period * 0.2, a + period * 0.8, b + period * 0.8), fill=main
                    )
    elif spec.kind == "digit":
        light = p["tone"] == "light"
        # black or white ink: the glyph, not a colour, is what the alt text names (coloured digits taught the
        # tiny model colour, not digits); the paper's hue varies so that pool digits stay distinct from the
        # eval set's under the decontamination descriptor (grey paper made 4 % of pool digits look-alikes)
        paper = rng.uniform(*((130, 255) if light else (0, 100)), 3)
        draw.rectangle((0, 0, big, big), fill=tuple(int(c) for c in paper))
        ink = _jitter(rng, BACKGROUNDS["black" if light else "white"], 8)
        font = _font(int(rng.uniform(0.45, 0.8) * big))
        position = (big / 2 + rng.normal(0, big * 0.06), big / 2 + rng.normal(0, big * 0.06))
        draw.text(position, str(p["digit"]), fill=ink, font=font, anchor="mm")
    elif spec.kind == "chart":
        _web_chart(draw, rng, p["chart"], main, other, big)
    else:  # a blurry "photo": overlapping soft blobs
        for _ in range(12):
            cx, cy, r = rng.uniform(0, big), rng.uniform(0, big), rng.uniform(big * 0.1, big * 0.4)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_jitter(rng, (128, 128, 128), 60))
    return image.resize((SIDE, SIDE), Image.Resampling.LANCZOS)


def _background(
    image: Image.Image, draw: ImageDraw.ImageDraw, rng: np.random.Generator, kind: str, other: Any
) -> None:
    big = image.width
    if kind in BACKGROUNDS:
        draw.rectangle((0, 0, big, big), fill=_jitter(rng, BACKGROUNDS[kind], 8))
    elif kind == "other":
        draw.rectangle((0, 0, big, big), fill=tuple(int(0.35 * c + 0.65 * 235) for c in other))
    elif kind == "gradient":  # two random colours along a random direction
        start, end = _muted(rng.uniform(90, 245, (2, 3)))
        angle = rng.uniform(0, 2 * np.pi)
        grid = np.linspace(-0.5, 0.5, big)
        ramp = np.clip(np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None] + 0.5, 0, 1)[..., None]
        image.paste(Image.fromarray((start * (1 - ramp) + end * ramp).astype(np.uint8)))
    elif kind == "field":  # a smooth field of random colours, like an out-of-focus photo background
        coarse = _muted(rng.uniform(60, 250, (4, 4, 3))).astype(np.uint8)
        image.paste(Image.fromarray(coarse).resize((big, big), Image.Resampling.BICUBIC))
    else:
        noise = rng.normal(200, 25, (big // 8, big // 8, 1)).repeat(3, axis=2)
        image.paste(Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).resize((big, big)))


def _muted(colours: np.ndarray) -> np.ndarray:
    """Desaturate background colours so the object's colour stays the only saturated one."""
    return 0.4 * colours + 0.6 * colours.mean(axis=-1, keepdims=True)


def _scene(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, scene: str, main: Any, other: Any, big: int
) -> None:
    horizon = int(big * rng.uniform(0.55, 0.75))
    sky = (250, 150, 90) if scene == "sunset" else _jitter(rng, (150, 195, 240), 10)
    draw.rectangle((0, 0, big, horizon), fill=sky)
    draw.rectangle(
        (0, horizon, big, big), fill=(40, 70, 150) if scene == "sunset" else _jitter(rng, (90, 160, 80), 12)
    )
    if scene == "house":
        x0, size = big * rng.uniform(0.2, 0.4), big * rng.uniform(0.3, 0.45)
        draw.rectangle((x0, horizon - size, x0 + size, horizon + 4), fill=other)
        draw.polygon([(x0 - 8, horizon - size), (x0 + size + 8, horizon - size), (x0 + size / 2, horizon - 1.6 * size)],
                     fill=main)  # fmt: skip
    elif scene == "tree":
        x = big * rng.uniform(0.3, 0.7)
        draw.rectangle((x - 8, horizon - big * 0.25, x + 8, horizon + 6), fill=(100, 60, 30))
        draw.ellipse((x - big * 0.2, horizon - big * 0.55, x + big * 0.2, horizon - big * 0.18), fill=main)
    elif scene == "sunset":
        r, x = big * rng.uniform(0.1, 0.18), big * rng.uniform(0.3, 0.7)
        draw.ellipse((x - r, horizon - r, x + r, horizon + r), fill=(250, 90, 40))
    else:
        x, y, r = big * rng.uniform(0.3, 0.7), big * rng.uniform(0.2, 0.4), big * 0.13
        draw.line((x, y + r, x + rng.normal(0, 8), horizon), fill=(60, 60, 60), width=2)
        draw.ellipse((x - r, y - r * 1.2, x + r, y + r), fill=main)


def _web_chart(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, chart: str, main: Any, other: Any, big: int
) -> None:
    if chart == "pie":
        start = 0.0
        for share in rng.dirichlet(np.ones(4)):
            colour = _jitter(rng, (128, 128, 128), 70)
            draw.pieslice(
                (big * 0.15, big * 0.15, big * 0.85, big * 0.85), start, start + 360 * share, fill=colour
            )
            start += 360 * share
    elif chart == "bars":
        for index, height in enumerate(rng.uniform(0.2, 0.8, 5)):
            x = big * (0.1 + index * 0.17)
            draw.rectangle(
                (x, big * (0.9 - height), x + big * 0.12, big * 0.9), fill=main if index % 2 else other
            )
    else:
        points = [(big * (0.1 + 0.16 * i), big * (0.85 - 0.12 * i + rng.normal(0, 0.03))) for i in range(6)]
        draw.line(points, fill=main, width=6)
        draw.polygon(
            [points[-1], (points[-1][0] - 20, points[-1][1] + 4), (points[-1][0] - 4, points[-1][1] + 20)],
            fill=main,
        )


def alt_text(spec: NaturalSpec, rng: np.random.Generator, noise: float = 0.2) -> str:
    """A short web alt text for the image; with probability ``noise`` an unrelated or junk caption."""
    if rng.random() < noise:
        template = str(rng.choice(NOISE_CAPTIONS))
        return template.format(n=int(rng.integers(1000, 9999)), year=int(rng.integers(2009, 2023)))
    p = spec.params
    colour, other = p["colour"], p["other"]
    options: list[str]
    if spec.kind == "shape":
        shape = p["shape"]
        background = {
            "gradient": "gradient",
            "field": "blurry",
            "noise": "textured",
            "other": f"light {other}",
        }.get(p["background"], p["background"])
        options = [
            f"{colour} {shape}", f"a {colour} {shape}", f"{colour} {shape} on a {background} background",
            f"{shape} icon, {colour}", f"{colour.capitalize()} {shape} sticker", f"vector {colour} {shape} clipart",
            f"a {shape} in {colour}", f"{colour} {shape} shape", f"big {colour} {shape}",
            # without the colour: colour alone then cannot tell these pairs apart, the shape must
            f"a {shape}", f"{shape} icon", f"{shape} shape", f"vector {shape} clipart", f"a simple {shape}",
            f"{shape} sticker",
        ]  # fmt: skip
    elif spec.kind == "scene":
        options = {
            "house": [f"a small house with a {colour} roof", f"{other} house with {colour} roof", "cartoon house"],
            "tree": [f"a {colour} tree in a field", "tree on a meadow", f"{colour} tree illustration"],
            "sunset": ["sunset over the sea", "orange sunset at the beach", "sun setting over water"],
            "balloon": [f"{colour} balloon in the sky", f"a {colour} balloon", "balloon flying"],
        }[p["scene"]]  # fmt: skip
    elif spec.kind == "texture":
        pattern = p["pattern"]
        options = [f"{colour} and white {pattern} fabric", f"{pattern} pattern", f"{colour} {pattern} wallpaper",
                   f"seamless {pattern} texture in {colour}"]  # fmt: skip
    elif spec.kind == "digit":
        digit = p["digit"]
        options = [
            f"the number {digit}", f"house number {digit} sign", f"number {digit} sticker", f"digit {digit}",
            f"the digit {digit}", f"a sign with the number {digit}", f"number {digit}", f"{digit}",
        ]  # fmt: skip
    elif spec.kind == "chart":
        options = ["business growth chart", "infographic", "sales statistics", "market share pie chart",
                   "bar graph icon", "financial report"]  # fmt: skip
    else:
        options = ["blurry photo", "abstract background", "bokeh lights", "colorful abstract art"]
    return str(rng.choice(options))
