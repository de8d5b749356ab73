"""THE image loader of NextFace: any photo on disk → ``[H,W,3]`` uint8 sRGB.

Every command and plugin reads images through :func:`load_image`, so they all agree on
what a file means:

- the EXIF orientation tag is applied (phone photos come out upright);
- grayscale (1-bit, 8-bit, 16-bit) is repeated into three channels;
- 16-bit data (grayscale ``I;16`` PNG/TIFF, 48-bit RGB PNG) keeps its high byte
  (``v >> 8``, so 65535 → 255 and 257·k → k), which is what Pillow does for 48-bit RGB;
- palette images are expanded to their colours;
- CMYK (e.g. print JPEGs) and YCbCr/LAB/HSV are converted to RGB by Pillow;
- **alpha is composited on black**: the colour is multiplied by alpha, so a cut-out face
  on a transparent background gets a black background (deterministic, unlike the
  arbitrary colours hidden under alpha = 0); fully opaque images are unchanged;
- floating-point images are refused (their range is ambiguous).

Missing, unreadable, non-image and corrupt or truncated files raise
:class:`~nextface_core.errors.InputError` naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

log = logging.getLogger(__name__)

#: file name endings :func:`list_images` treats as images (lower case)
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm"}
)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_uint8_16bit(values: np.ndarray) -> np.ndarray:
    """16-bit integer samples (any shape) → uint8, their high byte (``v >> 8``)."""
    return (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """``[H,W,4]`` uint8 → ``[H,W,3]`` uint8: colour × alpha (alpha composited on black)."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _pixels(image: Image.Image, path: Path) -> np.ndarray:
    """A decoded Pillow image of any mode → ``[H,W,3]`` uint8."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        gray = _to_uint8_16bit(np.asarray(image))
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise InputError(
            f"image {path} holds floating-point samples, whose range NextFace cannot know",
            "save it as an 8- or 16-bit PNG or JPEG",
        )
    if mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode == "1" or mode == "L":
        image = image.convert("RGB")
    elif mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 4:
        return _composite_on_black(array)
    return np.ascontiguousarray(array[..., :3])


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file → ``[H,W,3]`` uint8 sRGB, upright (see the module notes).

    Raises :class:`InputError` naming the file when it is missing, a folder, unreadable,
    not an image, or corrupt/truncated.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"image {path} does not exist", "check the path and the current folder")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image", "pass an image file, or use list_images() for a folder")
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            pixels = _pixels(upright, path)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(
            f"{path} is not an image file NextFace can read",
            "use PNG, JPEG, BMP, TIFF or WebP",
        ) from None
    except PermissionError:
        raise InputError(f"image {path} cannot be read: permission denied", "check the file's permissions") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"image {path} is too large to load safely: {exc}", "scale it down first") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"image {path} is corrupt or truncated ({exc})",
            "re-export or re-download the file",
        ) from None
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise InputError(f"image {path} has no pixels ({pixels.shape[1]}×{pixels.shape[0]})", "pass a real photo")
    return pixels


def list_images(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted by name.

    Files whose ending is not an image ending (:data:`IMAGE_SUFFIXES`) are skipped with one
    warning naming them; hidden files (``.name``) are skipped silently. Raises
    :class:`InputError` when the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise InputError(f"image folder {folder} {what}", "pass a folder of images")
    images: list[Path] = []
    skipped: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.is_dir():
            continue
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            images.append(entry)
        else:
            skipped.append(entry.name)
    if skipped:
        log.warning("skipping %d non-image file(s) in %s: %s", len(skipped), folder, ", ".join(skipped))
    if not images:
        raise InputError(
            f"folder {folder} holds no images",
            f"put files ending in {', '.join(sorted(IMAGE_SUFFIXES))} there",
        )
    return images
