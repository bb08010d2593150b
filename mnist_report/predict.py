"""A user's own digit image, made to look like an MNIST digit, then classified.

MNIST's digits were made this way (LeCun et al.): a white digit on black, its bounding box scaled
so that the longer side is 20 pixels (keeping the aspect ratio, with anti-aliasing), pasted into a
28x28 image so that the centre of mass of its pixels lies at the centre. ``to_mnist`` does the same
to any image Pillow can read: colour or grey, light or dark background, any size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

MAX_SIDE = 2048  # larger images are first shrunk to this (the digit ends up 20 px anyway)
MAX_PIXELS = 100_000_000  # refuse larger images before decoding them: likely a mistake or a bomb
INK = 0.05  # a pixel is part of the digit when at least this much of the maximum intensity
MIN_STROKE_PIXELS = 6  # a digit has a connected stroke of at least this many pixels


# The network predict uses unless told otherwise: notebook 03's final network, the first seed (the better
# network, trained on rotated, shifted and zoomed digits), as the notebook's metrics name it.
DEFAULT_FROM = ("reports/03-beyond-the-seed.metrics.json", ("final", "model_paths", 0))


def default_model() -> Path:
    """The shipped network ``DEFAULT_FROM`` names, with a clear error where the checkout lacks it."""
    import json

    from mnist_report.paths import from_root

    metrics, (*keys, index) = from_root(DEFAULT_FROM[0]), DEFAULT_FROM[1]
    try:
        found = json.loads(metrics.read_text())
        for k in keys:
            found = found[k]
        path = from_root(found[index])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise FileNotFoundError(
            f"{metrics} does not name the report's final network ({type(e).__name__}: {e}): "
            "restore it with `git checkout -- reports/`, or give a model with --model"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(
            f"the report's final network {path} is missing: restore it with "
            f"`git checkout -- {path.parent}`, or give a model with --model"
        )
    return path


class ImageError(ValueError):
    """An image that cannot be turned into a digit, with the reason."""


def load_image(path: str | Path) -> Image.Image:
    """Open an image file, with a clear error for a missing, empty, huge or unreadable file."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            im = Image.open(path)
        with im:
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"{path}: {width}x{height} pixels is more than this tool reads ({MAX_PIXELS:,})")
            im.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced size
            im.load()
            return im.copy()
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file that Pillow can read (PNG, JPEG, BMP, GIF, TIFF, ...)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: refused as too large to decode safely ({e})") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as e:  # truncated or damaged
        raise ImageError(f"{path}: the image data is damaged or truncated ({e})") from None


def to_grey(im: Image.Image) -> np.ndarray:
    """Greyscale in [0, 1], whatever the mode: 16-bit and float images are scaled by their range;
    transparent parts become paper of the shade opposite to the ink (so white ink stays visible)."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        grey = Image.fromarray(((np.nan_to_num(a, nan=lo) - lo) / (hi - lo) if hi > lo else a * 0).astype(np.float32))
    else:
        if im.has_transparency_data:
            rgba = im.convert("RGBA")
            alpha = np.asarray(rgba.getchannel("A")) > 127
            ink = np.asarray(rgba.convert("L"))[alpha]
            shade = 0 if ink.size and ink.mean() > 127 else 255
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (shade, shade, shade, 255)), rgba)
        grey = im.convert("L")
    if max(grey.size) > MAX_SIDE:
        grey.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    a = np.asarray(grey, dtype=np.float32)
    return a if grey.mode == "F" else a / 255.0


def to_mnist(image: np.ndarray | Image.Image) -> np.ndarray:
    """A (28, 28, 1) float32 image in [0, 1], white digit on black, as MNIST's digits were made.

    Inverts a dark-on-light image (judged by the border: MNIST's is black), crops to the digit,
    scales the longer side to 20 px keeping the aspect ratio, and centres the centre of mass.
    """
    grey = to_grey(image) if isinstance(image, Image.Image) else np.asarray(image, dtype=np.float32)
    if grey.ndim == 3 and grey.shape[-1] == 1:
        grey = grey[..., 0]
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ImageError(f"expected a 2-D greyscale image; got shape {grey.shape}")
    if grey.max() > 1.0:
        grey = grey / 255.0
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > (grey.min() + grey.max()) / 2:  # light paper: make the ink the bright part
        grey, border = 1.0 - grey, 1.0 - border
    grey = np.clip(grey - np.median(border), 0, None)  # the paper's shade becomes black
    if grey.max() <= 0.05:
        raise ImageError("no digit found: the image is blank (a single shade)")
    grey = grey / grey.max()
    # the digit: the connected strokes, without specks (noise, dust) far smaller than the largest stroke
    labels, n = ndimage.label(grey >= INK)
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.max() < MIN_STROKE_PIXELS:
        raise ImageError("no digit found: only specks (noise) on a plain background")
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.05 * sizes.max()))
    rows = np.flatnonzero(keep.any(axis=1))
    cols = np.flatnonzero(keep.any(axis=0))
    digit = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = digit.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    box = np.clip(box, 0.0, 1.0)
    box = box / box.max() if box.max() > 0 else box  # thin strokes shrunk a lot stay full strength
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - box.shape[0]) // 2, (28 - box.shape[1]) // 2
    canvas[top : top + box.shape[0], left : left + box.shape[1]] = box
    cy, cx = ndimage.center_of_mass(canvas)
    # shift by whole pixels so the centre of mass is at pixel (14, 14), where MNIST has it, keeping the
    # digit on the canvas
    dy = int(np.clip(round(14.0 - cy), -top, 28 - top - box.shape[0]))
    dx = int(np.clip(round(14.0 - cx), -left, 28 - left - box.shape[1]))
    canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    return canvas[..., None]


@dataclass
class Prediction:
    path: str
    digit: int | None = None
    probability: float | None = None
    probabilities: list[float] | None = None
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.path}: error: {self.error}"
        return f"{self.path}: {self.digit} (probability {self.probability:.1%})"


def predict_files(model, paths: list[str | Path]) -> list[Prediction]:
    """Each file's predicted digit and its probability; a file that fails gets its error instead."""
    from mnist_report.modeling.model import predict_proba  # TensorFlow: not needed to read or prepare an image

    images, results = [], []
    for path in paths:
        try:
            images.append(to_mnist(load_image(path)))
            results.append(Prediction(str(path)))
        except ImageError as e:
            results.append(Prediction(str(path), error=str(e).removeprefix(f"{path}: ")))
        except Exception as e:  # anything else Pillow raises for an odd file: report it, go on with the rest
            results.append(Prediction(str(path), error=f"could not read it ({type(e).__name__}: {e})"))
    ok = [r for r in results if r.error is None]
    if ok:
        proba = predict_proba(model, np.stack(images))
        for r, p in zip(ok, proba, strict=True):
            r.digit, r.probability, r.probabilities = int(p.argmax()), float(p.max()), [float(v) for v in p]
    return results


FONT_FAMILIES = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")  # shipped with matplotlib


def font_digits() -> tuple[list[Image.Image], np.ndarray, list[str]]:
    """The digits 0-9 typeset in each of ``FONT_FAMILIES``, normal and bold, dark on a white page
    (160-point glyphs on 200x220 pages): digit images that have nothing to do with MNIST.
    Returns the pages, their labels and the font of each."""
    from matplotlib import font_manager
    from PIL import ImageDraw, ImageFont

    pages, labels, names = [], [], []
    for family in FONT_FAMILIES:
        for weight in ("normal", "bold"):
            prop = font_manager.FontProperties(family=family, weight=weight)
            font = ImageFont.truetype(font_manager.findfont(prop, fallback_to_default=False), 160)
            for digit in range(10):
                page = Image.new("L", (200, 220), 255)
                ImageDraw.Draw(page).text((40, 10), str(digit), font=font, fill=0)
                pages.append(page)
                labels.append(digit)
                names.append(f"{family} {weight}")
    return pages, np.array(labels), names


def font_check(model) -> dict:
    """The digits 0-9 typeset in ``FONT_FAMILIES`` (normal and bold), made MNIST-like and classified by
    ``model``: how many it recognises, in all and by font."""
    from mnist_report.modeling.model import predict_proba

    pages, labels, names = font_digits()
    right = predict_proba(model, np.stack([to_mnist(page) for page in pages])).argmax(axis=1) == labels
    by_font: dict[str, int] = {}
    for name, ok in zip(names, right, strict=True):
        by_font[name] = by_font.get(name, 0) + int(ok)
    return {"n": len(labels), "recognised": int(right.sum()), "rate": float(right.mean()), "by_font": by_font}
