"""load_image / list_images: every pixel layout a photo can arrive in, and every bad file."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nextface_core.errors import InputError
from nextface_core.images import list_images, load_image

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)


def png_48bit(path: Path, rgb16: np.ndarray) -> None:
    """Write a 16-bit-per-channel RGB PNG by hand (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_png_is_returned_exactly(tmp_path: Path) -> None:
    Image.fromarray(RGB).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, RGB)


def test_grayscale_is_repeated_into_three_channels(tmp_path: Path) -> None:
    gray = RGB[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_16bit_grayscale_keeps_the_high_byte(tmp_path: Path) -> None:
    gray16 = RGB[..., 1].astype(np.uint16) * 257  # 257·k ↦ k exactly
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[..., 2], RGB[..., 1])


def test_48bit_rgb_png_keeps_the_high_byte(tmp_path: Path) -> None:
    rgb16 = RNG.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    png_48bit(tmp_path / "c16.png", rgb16)
    np.testing.assert_array_equal(load_image(tmp_path / "c16.png"), (rgb16 >> 8).astype(np.uint8))


def test_rgba_is_composited_on_black(tmp_path: Path) -> None:
    alpha = np.zeros((12, 16), np.uint8)
    alpha[:, 8:] = 255
    alpha[:4, :4] = 128
    Image.fromarray(np.dstack([RGB, alpha]), mode="RGBA").save(tmp_path / "t.png")
    out = load_image(tmp_path / "t.png").astype(int)
    np.testing.assert_array_equal(out[:, 8:], RGB[:, 8:])  # opaque: unchanged
    assert out[4:, :8].max() == 0  # transparent: black
    half = RGB[:4, :4].astype(int) * 128 / 255
    assert np.abs(out[:4, :4] - half).max() <= 0.5 + 1e-9  # rounded colour × alpha


def test_gray_alpha_and_palette_with_transparency(tmp_path: Path) -> None:
    la = np.dstack([RGB[..., 0], np.full((12, 16), 255, np.uint8)])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png")[..., 1], RGB[..., 0])
    pal = Image.fromarray(RGB).quantize(8)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png")
    index = np.asarray(Image.open(tmp_path / "p.png"))
    assert out[index == 0].max() == 0  # the transparent palette entry became black
    assert out.shape == (12, 16, 3)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # a 40×20 (W×H) image, left half white; orientation 6 = "rotate 90° clockwise to view"
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "o.jpg")
    assert out.shape == (40, 20, 3)  # upright: now taller than wide
    # rotating the stored image 90° clockwise brings its left half to the top
    assert out[:18].mean() > 240 and out[22:].mean() < 15


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    smooth = np.zeros((32, 32, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    smooth[..., 1] = 90
    smooth[..., 2] = np.linspace(255, 0, 32, dtype=np.uint8)[:, None]
    Image.fromarray(smooth).convert("CMYK").save(tmp_path / "k.jpg", quality=98)
    assert Image.open(tmp_path / "k.jpg").mode == "CMYK"
    out = load_image(tmp_path / "k.jpg")
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - smooth).mean() < 3.0  # JPEG loss only


def test_float_images_are_refused(tmp_path: Path) -> None:
    Image.fromarray(RGB[..., 0].astype(np.float32) / 255).save(tmp_path / "f.tif")
    with pytest.raises(InputError, match="floating-point"):
        load_image(tmp_path / "f.tif")


def test_missing_folder_and_non_image_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.png does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(InputError, match="notes.png is not an image"):
        load_image(tmp_path / "notes.png")


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png is corrupt or truncated"):
        load_image(tmp_path / "cut.png")
    Image.fromarray(RGB).save(tmp_path / "full.jpg")
    jpg = bytearray((tmp_path / "full.jpg").read_bytes())
    (tmp_path / "cut.jpg").write_bytes(bytes(jpg[: len(jpg) // 2]))
    with pytest.raises(InputError, match="cut.jpg is corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_list_images_sorts_skips_and_flags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("b.JPG", "a.png", "c.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    with caplog.at_level(logging.WARNING, logger="nextface_core.images"):
        found = list_images(tmp_path)
    assert [p.name for p in found] == ["a.png", "b.JPG", "c.tiff"]
    assert "readme.txt" in caplog.text and ".DS_Store" not in caplog.text


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list_images(tmp_path / "none")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputError, match="holds no images"):
        list_images(tmp_path)
    with pytest.raises(InputError, match="is a file, not a folder"):
        list_images(tmp_path / "x.txt")
