"""Matplotlib plumbing shared by every figure: headless backend, saving, and tile canvases.

Speed matters (each run draws a dozen figures on CPU): figures use fixed
margins instead of constrained layout, and image grids are painted into one
array (:class:`TileCanvas`) and shown with one ``imshow`` instead of one axes
per image, which is about ten times faster to render.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in threads, DDP workers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

#: dots per inch of saved PNGs: sharp enough to read, small enough to render fast
DPI = 100
CORRECT_COLOR = "#2a9d3f"
WRONG_COLOR = "#d62728"


def new_figure(
    width: float,
    height: float,
    left: float = 0.0,
    right: float = 0.0,
    bottom: float = 0.0,
    top: float = 0.0,
    wspace: float | None = None,
    hspace: float | None = None,
) -> Figure:
    """A ``width`` x ``height`` inch figure outside pyplot's global state (no leaks across runs).

    Margins around the subplots are given in inches (fixed, not solved by a layout engine);
    ``wspace``/``hspace`` are fractions of the mean axes width/height, as in ``subplots_adjust``.
    """
    fig = Figure(figsize=(width, height))
    if left or right or bottom or top:
        fig.subplots_adjust(
            left=left / width,
            right=1 - right / width,
            bottom=bottom / height,
            top=1 - top / height,
            wspace=wspace,
            hspace=hspace,
        )
    return fig


def save_figure(fig: Figure | CanvasFigure, path: Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG (creating the folder) and free it."""
    if isinstance(fig, CanvasFigure):
        return fig.save(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # zlib level 3: a fraction of the default level's time, files a few percent larger
    fig.savefig(path, dpi=dpi, facecolor="white", pil_kwargs={"compress_level": 3})
    plt.close(fig)
    return path


def to_unit_gray(image: torch.Tensor) -> np.ndarray:
    """(1, H, W) or (H, W) uint8/float tensor -> (H, W) float array in [0, 1] on the CPU."""
    array = image.detach().cpu().float().squeeze(0).numpy()
    return array / 255.0 if image.dtype == torch.uint8 else array


def short_name(name: str, max_len: int = 11) -> str:
    """Class names short enough for a tick label or a panel title."""
    return name if len(name) <= max_len else name[: max_len - 1] + "…"


def tick_room(labels: list[str], fontsize: float = 9, rotated: bool = False) -> float:
    """Inches a row of tick labels needs (rough: 0.6 em per character)."""
    longest = max((len(s) for s in labels), default=1)
    width = 0.6 * fontsize / 72 * longest
    return (0.72 * width + 0.1 if rotated else fontsize / 72 + 0.05) + 0.05


def class_bar_figure(
    class_names: list[str], plot_height: float, right: float, top: float
) -> tuple[Figure, Axes, np.ndarray]:
    """A 10-inch-wide figure for bars per class: class names as x ticks, slanted when long.

    Returns the figure, its axes and the bar centres (0..n-1).
    """
    names = [short_name(c) for c in class_names]
    long = max(map(len, names)) > 3
    room = tick_room(names, 9, long)
    fig = new_figure(10, plot_height + room, left=0.75, right=right, top=top, bottom=room + 0.1)
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.set_xticks(
        x,
        names,
        rotation=30 if long else 0,
        ha="right" if long else "center",
        rotation_mode="anchor",
        fontsize=9,
    )
    return fig, ax, x


class TileCanvas:
    """A white RGB canvas holding a grid of small images, saved as one picture (:meth:`figure`).

    Cells are ``tile`` pixels wide and ``tile_h`` (default ``tile``) high, separated by ``gap``
    pixels (``vgap`` between rows, default ``gap``), with ``caption`` pixels above each row
    for titles and ``top``/``left``/``right`` margins; ``split_after`` adds ``split`` extra
    pixels after that column (to separate two groups). Text anchors are in canvas pixels,
    the data coordinates of the axes :meth:`figure` returns.
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        tile: int = 28,
        gap: int = 3,
        caption: int = 9,
        top: int = 0,
        left: int = 0,
        split_after: int | None = None,
        split: int = 0,
        right: int = 0,
        tile_h: int | None = None,
        vgap: int | None = None,
    ) -> None:
        self.rows, self.cols, self.tile, self.gap, self.caption = rows, cols, tile, gap, caption
        self.tile_h = tile_h or tile
        self.vgap = gap if vgap is None else vgap
        self.top, self.left = top, left
        self.split_after, self.split = split_after, split
        width = left + cols * (tile + gap) + gap + (split if split_after is not None else 0) + right
        height = top + rows * (self.tile_h + caption + self.vgap) + self.vgap
        self.array = np.ones((height, width, 3), dtype=np.float32)

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel (x, y) of a cell's image."""
        x = self.left + self.gap + col * (self.tile + self.gap)
        if self.split_after is not None and col > self.split_after:
            x += self.split
        y = self.top + row * (self.tile_h + self.caption + self.vgap) + self.caption
        return x, y

    def put(self, row: int, col: int, image: np.ndarray) -> None:
        """Paint an (H, W) gray or (H, W, 3) RGB array in [0, 1] into a cell."""
        x, y = self.origin(row, col)
        rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        h, w = rgb.shape[:2]
        self.array[y : y + h, x : x + w] = np.clip(rgb, 0, 1)

    def fill(self, x: int, y: int, w: int, h: int, color: str) -> None:
        """Paint a solid rectangle (bars of a chart) at pixel ``(x, y)``."""
        if w > 0 and h > 0:
            self.array[y : y + h, x : x + w] = matplotlib.colors.to_rgb(color)

    def caption_xy(self, row: int, col: int) -> tuple[float, float]:
        """Anchor for a caption centered above a cell (use ``va='bottom'``)."""
        x, y = self.origin(row, col)
        return x + self.tile / 2 - 0.5, y - 1

    def row_label_xy(self, row: int, col: int = 0) -> tuple[float, float]:
        """Anchor left of a cell, vertically centered (use ``ha='right', va='center'``)."""
        x, y = self.origin(row, col)
        return x - 2.5, y + self.tile_h / 2 - 0.5

    def figure(self, scale: int = 4, dpi: int = DPI) -> tuple[CanvasFigure, Axes]:
        """The canvas at ``scale`` output pixels per canvas pixel, and an axes for text whose data
        coordinates are canvas pixels."""
        pixels = (np.clip(self.array, 0, 1) * 255 + 0.5).astype(np.uint8)
        fig = CanvasFigure(pixels.repeat(scale, axis=0).repeat(scale, axis=1), dpi)
        height, width = self.array.shape[:2]
        fig.ax.set_xlim(-0.5, width - 0.5)
        fig.ax.set_ylim(height - 0.5, -0.5)
        return fig, fig.ax


class CanvasFigure:
    """A picture made of a pixel array plus matplotlib text on top.

    Matplotlib draws only the (transparent) text layer; it is blended onto the
    pixels with NumPy and written with PIL. Drawing the pixels through
    ``imshow``/``figimage`` would resample them, which took most of the time.
    """

    def __init__(self, pixels: np.ndarray, dpi: int = DPI) -> None:
        self.pixels = pixels
        height, width = pixels.shape[:2]
        self.figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        self.figure.patch.set_alpha(0.0)
        self.ax = self.figure.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()

    def save(self, path: Path) -> Path:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from PIL import Image

        agg = FigureCanvasAgg(self.figure)
        agg.draw()
        layer = np.asarray(agg.buffer_rgba())
        height, width = self.pixels.shape[:2]
        layer = layer[:height, :width]
        out = self.pixels.astype(np.float32)
        h, w = layer.shape[:2]
        alpha = layer[..., 3:4].astype(np.float32) / 255.0
        out[:h, :w] = out[:h, :w] * (1 - alpha) + layer[..., :3].astype(np.float32) * alpha
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((out + 0.5).astype(np.uint8)).save(path, compress_level=3)
        return path


def grid_figure(
    panels: int, cols: int = 3, size: tuple[float, float] = (4.2, 3.0)
) -> tuple[Figure, list[Any]]:
    """A figure with ``panels`` axes in a grid (unused cells hidden); no pyplot, no GUI."""
    cols = max(1, min(cols, panels))
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def depth_colors(n: int) -> Iterable[Any]:
    """One colour per layer, dark (input side) to light (output side)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]
