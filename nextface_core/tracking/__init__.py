"""Video tracking: pose, expression and light per frame with a fixed identity.

From Python::

    from nextface_core.config import load_config
    from nextface_core.tracking import read_frames, track_frames, save_track

    result = track_frames(lambda: read_frames("clip.mp4"), load_config())
    save_track(result, lambda: read_frames("clip.mp4"), "out/")
"""

from .outputs import save_track
from .identity import Identity, fit_identity, keyframe_indices
from .track import INTERPOLATED, MISSING, TRACKED, TrackResult, frame_name, track_frames
from .tracker import Tracker, TrackScene, TrackSettings
from .video import VideoInfo, probe, read_frames, video_writer

__all__ = [
    "INTERPOLATED", "MISSING", "TRACKED", "Identity", "TrackResult", "TrackScene", "TrackSettings", "Tracker",
    "VideoInfo", "fit_identity", "frame_name", "keyframe_indices", "probe", "read_frames", "save_track", "track_frames", "video_writer",
]
