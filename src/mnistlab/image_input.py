"""Turn an arbitrary image file into a 28x28 data-set image, the way the data sets were made.

Both data sets show a light object on a black background:

* **MNIST** (LeCun et al.): the digit's bounding box is scaled to fit 20x20
  (aspect ratio kept, anti-aliased), then placed in a 28x28 frame so that its
  center of mass sits at the center.
* **Fashion-MNIST** (Zalando): the product photo is trimmed to the object,
  its longest edge resized to 28, the short edge padded to 28 around the
  center, and the intensities negated (the photos have light backgrounds).
  Zalando's sharpening step is left out.

Here: an image with a light border (a scan, a photo, black ink on white
paper) is inverted, so the object becomes light on dark; transparent pixels
count as white background. The background level (median of the border) is
subtracted and the contrast stretched, the object cropped to the pixels
brighter than the background by more than 5 % of the range, then fitted as
above. An image that is already 28x28 with a dark border is taken as it is
(it is in the data set's format already, e.g. written from the data set).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

SIZE = 28
MNIST_BOX = 20
#: a pixel belongs to the object when brighter than the background by this share of 255
FOREGROUND = 0.05
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: larger images are refused before their pixels are decoded (a small file can declare a
#: huge image: a "decompression bomb"); 40 megapixels is well above any photo of a digit
MAX_PIXELS = 40_000_000


class ImageInputError(ValueError):
    """The file is not an image this lab can classify (unreadable, empty, blank)."""


def read_grayscale(path: str | os.PathLike) -> np.ndarray:
    """The file as an (H, W) uint8 array; transparency is flattened onto white."""
    try:
        with warnings.catch_warnings():  # PIL warns above 89 MP; the cap below is ours
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)  # reads the header only
        with img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageInputError(
                    f"image is {width}x{height} pixels, more than the {MAX_PIXELS:,} this lab "
                    "decodes; scale it down first"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            gray = np.asarray(img.convert("L"), dtype=np.uint8)
    except ImageInputError:
        raise
    except FileNotFoundError:
        raise ImageInputError("no such file") from None
    except Image.DecompressionBombError as err:  # PIL's own cap, checked in Image.open
        raise ImageInputError(
            f"refused as a decompression bomb ({str(err).split('.')[0]}); scale it down first"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageInputError(f"not a readable PNG/JPEG image ({reason})") from None
    if gray.size == 0:
        raise ImageInputError("the image has no pixels")
    return gray


def _border(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def _resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(
        Image.fromarray(array).resize((max(width, 1), max(height, 1)), Image.Resampling.LANCZOS)
    )


def to_dataset_image(gray: np.ndarray, dataset: str) -> torch.Tensor:
    """(H, W) uint8 -> (1, 28, 28) uint8 tensor, light object on black, framed as ``dataset`` was."""
    array = gray.astype(np.float32)
    if (
        np.median(_border(array)) > 127
    ):  # dark object on light background: invert, as the data sets are
        array = 255.0 - array
    if array.shape == (SIZE, SIZE):
        return torch.from_numpy(np.clip(array, 0, 255).round().astype(np.uint8)).unsqueeze(0)
    background = float(np.median(_border(array)))
    peak = float(array.max())
    if peak - background <= FOREGROUND * 255:
        raise ImageInputError("blank image: nothing stands out from the background")
    array = np.clip((array - background) * (255.0 / (peak - background)), 0, 255)
    rows = np.flatnonzero((array > FOREGROUND * 255).any(axis=1))
    cols = np.flatnonzero((array > FOREGROUND * 255).any(axis=0))
    crop = array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].round().astype(np.uint8)
    h, w = crop.shape
    box = MNIST_BOX if dataset == "mnist" else SIZE
    scale = box / max(h, w)
    fitted = _resize(crop, round(w * scale), round(h * scale)).astype(np.float32)
    fh, fw = fitted.shape
    frame = np.zeros((SIZE, SIZE), dtype=np.float32)
    if dataset == "mnist":  # center of mass at the frame's center
        total = fitted.sum()
        cy = (fitted.sum(axis=1) @ np.arange(fh)) / total if total else (fh - 1) / 2
        cx = (fitted.sum(axis=0) @ np.arange(fw)) / total if total else (fw - 1) / 2
        top = int(round((SIZE - 1) / 2 - cy))
        left = int(round((SIZE - 1) / 2 - cx))
        top, left = min(max(top, 0), SIZE - fh), min(max(left, 0), SIZE - fw)
    else:  # bounding box centered
        top, left = (SIZE - fh) // 2, (SIZE - fw) // 2
    frame[top : top + fh, left : left + fw] = fitted
    return torch.from_numpy(np.clip(frame, 0, 255).round().astype(np.uint8)).unsqueeze(0)


def load_image(path: str | os.PathLike, dataset: str) -> torch.Tensor:
    """Read ``path`` and convert it for ``dataset`` (see the module docstring)."""
    return to_dataset_image(read_grayscale(path), dataset)


def expand_paths(paths: list[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files to classify (a folder contributes its PNG/JPEG files, sorted, not recursing) and
    ``(path, reason)`` for arguments that give none."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if found:
                files += found
            else:
                problems.append((path, f"folder holds no {'/'.join(IMAGE_SUFFIXES)} files"))
        elif path.exists():
            files.append(path)
        else:
            problems.append((path, "no such file or folder"))
    return files, problems
