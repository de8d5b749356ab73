"""Video decoding and encoding through imageio-ffmpeg, whose wheel carries its own ffmpeg.

No system ffmpeg is needed: the ``video`` extra (``pip install "nextface[video]"``) brings the binary. Frames are
``[H,W,3]`` uint8 sRGB arrays, decoded one at a time (a long video is never held in memory).
A file ffmpeg cannot open or decode raises :class:`~nextface_core.errors.InputError`
naming the file and ffmpeg's reason.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import BackendUnavailableError, InputError
from ..files import atomic_path
from ..install import extra_command

INSTALL_HINT = f"{extra_command('video')} (imageio-ffmpeg, which ships its own ffmpeg)"


def _ffmpeg() -> Any:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise BackendUnavailableError("video support needs imageio-ffmpeg, which is not installed", INSTALL_HINT) from None
    return imageio_ffmpeg


@dataclass(frozen=True)
class VideoInfo:
    """``fps`` (0 when the file does not say), ``size`` (width, height) of the decoded
    frames, ``duration`` seconds (0 when unknown), ``codec`` as ffmpeg names it."""

    path: Path
    fps: float
    size: tuple[int, int]
    duration: float
    codec: str


def _unreadable(path: Path, reason: str) -> InputError:
    reason = " ".join(str(reason).split())[-300:]
    return InputError(
        f"video {path} cannot be decoded: {reason}",
        "pass a video file ffmpeg reads (e.g. .mp4 with H.264, .mov, .avi, .webm); re-encode a damaged file",
    )


def _open(path: Path) -> tuple[VideoInfo, Iterator[bytes]]:
    if not path.exists():
        raise InputError(f"video {path} does not exist", "check the path of the video")
    if not path.is_file():
        raise InputError(f"video {path} is not a file", "pass a video file, not a folder")
    reader = _ffmpeg().read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, ValueError) as exc:
        reader.close()
        raise _unreadable(path, str(exc) or type(exc).__name__) from None
    size = tuple(int(v) for v in meta.get("size") or (0, 0))
    if len(size) != 2 or min(size) <= 0:
        reader.close()
        raise _unreadable(path, "no video stream")
    info = VideoInfo(path, float(meta.get("fps") or 0.0), size, float(meta.get("duration") or 0.0), str(meta.get("codec", "")))
    return info, reader


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, frame size, duration and codec of a video (decodes nothing)."""
    info, reader = _open(Path(path))
    reader.close()
    return info


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a video in order, each ``[H,W,3]`` uint8 sRGB.

    A file that cannot be opened raises :class:`InputError` on the first ``next``; ffmpeg
    failing after some frames (a damaged tail) also raises it, naming the frame.
    """
    path = Path(path)
    info, reader = _open(path)
    w, h = info.size
    count = 0
    try:
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                break
            except (OSError, RuntimeError) as exc:
                raise _unreadable(path, f"after frame {count}: {exc}") from None
            if len(raw) != w * h * 3:
                raise _unreadable(path, f"frame {count} has {len(raw)} bytes, expected {w * h * 3}")
            yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            count += 1
    finally:
        reader.close()
    if count == 0:
        raise _unreadable(path, "it holds no decodable frame")


@contextlib.contextmanager
def video_writer(path: str | Path, size: tuple[int, int], fps: float) -> Iterator[Any]:
    """Write an H.264 ``.mp4`` of ``[H,W,3]`` uint8 frames (``size`` = (width, height)).

    Yields a function taking one frame. Odd sizes are padded by one black row/column
    (H.264's 4:2:0 needs even sizes). The file appears only when writing finished.
    """
    path = Path(path)
    w, h = size
    even = (w + w % 2, h + h % 2)
    with atomic_path(path) as tmp:
        writer = _ffmpeg().write_frames(
            str(tmp), even, fps=fps if fps > 0 else 25.0, codec="libx264", quality=7, macro_block_size=1,
            ffmpeg_log_level="error", output_params=["-f", "mp4"],
        )
        writer.send(None)

        def write(frame: np.ndarray) -> None:
            if frame.shape[:2] != (h, w):
                raise ValueError(f"frame is {frame.shape[1]}×{frame.shape[0]}, the video is {w}×{h}")
            if even != (w, h):
                frame = np.pad(frame, ((0, even[1] - h), (0, even[0] - w), (0, 0)))
            writer.send(np.ascontiguousarray(frame))

        try:
            yield write
        finally:
            writer.close()
