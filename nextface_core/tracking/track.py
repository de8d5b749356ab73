"""Tracking a video: landmarks per frame, the identity, per-frame parameters, gap filling.

The frames are read in passes from a re-iterable source (a video is decoded again for each
pass, so nothing but the per-frame parameters is kept in memory):

A. landmarks on every frame (the detector in its tracking mode where it has one);
B. the identity, from a shared-identity fit of ``track.keyframes`` frames unless given;
C. per-frame tracking (:class:`~nextface_core.tracking.tracker.Tracker`).

Frames without a face are marked; runs of at most ``track.max_gap`` of them between two
tracked frames are interpolated, longer runs hold the nearest tracked frame's parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np
import torch

from ..dense_landmarks import choose_schema, prepare_model
from ..camera import axis_angle_to_matrix, matrix_to_axis_angle
from ..config import Config, resolve_device
from ..errors import InputError
from ..fitting.inputs import make_batch
from ..landmarks import LandmarkSet, for_video
from ..model import MorphableModel
from ..params import SceneParameters
from ..plugins import PluginRegistry
from ..render import RenderMode, RenderOutput, Renderer
from .identity import Identity, fit_identity, keyframe_indices
from .tracker import TrackScene, Tracker, TrackSettings, torch_threads


TRACKED, INTERPOLATED, MISSING = 0, 1, 2
STATUS_NAMES = {TRACKED: "tracked", INTERPOLATED: "interpolated", MISSING: "no face"}

Frames = Callable[[], Iterable[np.ndarray]]  # a fresh iterator over the frames per call
Progress = Callable[[str, int, int], None]  # (pass name, frame index, frame count or 0)


def frame_name(index: int) -> str:
    """The name of frame ``index`` (0-based), as landmark files must spell it: ``frame000012``."""
    return f"frame{index:06d}"


@dataclass
class TrackResult:
    """Per-frame parameters of a track (T frames), in the tracked frames' pixels.

    ``rotation``/``translation [T,3]``, ``expression [T,K_e]``, ``sh [T,bands²,3]``,
    ``focal [T]``; ``status [T]`` (:data:`TRACKED`, :data:`INTERPOLATED`, :data:`MISSING`);
    ``landmarks_detected [T,L,2]`` (the schema's points, scaled to the tracked frames),
    ``landmarks_projected [T,R,2]`` (rows of ``landmark_index``), ``landmark_error_px [T]``
    (NaN where not tracked), ``seconds [T]`` tracking wall time per frame and ``cpu_seconds [T]``
    the process's CPU time (all its threads) per frame. ``scale``: tracked /
    original frame size; ``image_size`` (H, W) tracked.
    """

    identity: Identity
    schema: str
    fps: float
    image_size: tuple[int, int]
    scale: float
    rotation: torch.Tensor
    translation: torch.Tensor
    expression: torch.Tensor
    sh: torch.Tensor
    focal: torch.Tensor
    status: np.ndarray
    landmarks_detected: torch.Tensor
    landmarks_projected: torch.Tensor
    landmark_index: torch.Tensor
    landmark_error_px: np.ndarray
    seconds: np.ndarray
    cpu_seconds: np.ndarray
    scene: TrackScene
    renderer: Renderer
    config: Config
    model: MorphableModel
    identity_seconds: float = 0.0
    detect_seconds: float = 0.0
    keyframes: list[int] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return int(self.status.shape[0])

    def params(self, index: int) -> SceneParameters:
        """Frame ``index``'s parameters as a batch of one."""
        p = self.identity.parameters(1, self.sh[index : index + 1])
        return replace(p, rotation=self.rotation[index : index + 1], translation=self.translation[index : index + 1],
                       expression=self.expression[index : index + 1], focal=self.focal[index : index + 1])

    def vertices(self, index: int) -> torch.Tensor:
        """Model-space vertices of frame ``index`` ``[N,3]`` (identity + expression)."""
        with torch.no_grad():
            return self.scene.vertices(self.params(index))[0]

    def render(self, index: int, mode: RenderMode = RenderMode.FULL) -> RenderOutput:
        """Render frame ``index`` (batch of one) with the final sample count."""
        with torch.no_grad():
            t = self.scene.diffuse.shape[1]
            rough = torch.full((1, t, t, 1), self.config.texture.initial_roughness, dtype=self.scene.diffuse.dtype,
                               device=self.scene.diffuse.device)
            inputs = self.scene.render_inputs(self.params(index), self.scene.diffuse, self.scene.specular, rough)
            return self.renderer.render(inputs, self.scene.render_settings(self.config.render.final_samples, self.config.run.seed, mode))

    def tracking_frames_per_second(self) -> float:
        """Tracked frames per second of tracking time (identity and landmarks excluded)."""
        done = self.status == TRACKED
        total = float(self.seconds[done].sum())
        return float(done.sum()) / total if total > 0 else 0.0

    def counts(self) -> dict[str, int]:
        return {name: int((self.status == code).sum()) for code, name in STATUS_NAMES.items()}


def _stack_detections(rows: list[dict[str, LandmarkSet]], names: list[str]) -> dict[str, LandmarkSet]:
    """Per-frame detector outputs (one row each) → one LandmarkSet per schema over all frames."""
    out = {}
    for schema in rows[0]:
        sets = [r[schema] for r in rows]
        out[schema] = LandmarkSet(schema, torch.cat([s.points for s in sets]), torch.cat([s.confidence for s in sets]),
                                  torch.cat([s.found for s in sets]), names)
    return out


def detect_frames(frames: Frames, config: Config, registry: PluginRegistry, progress: Progress | None = None
                  ) -> tuple[dict[str, LandmarkSet], list[str]]:
    """Run the configured detector on every frame in order (in its video mode, if it has one)."""
    detector = for_video(registry.create("detector", config.run.landmarks, config))
    rows, names = [], []
    try:
        for i, frame in enumerate(frames()):
            names.append(frame_name(i))
            rows.append(detector.detect([frame], [names[-1]]))
            if progress is not None:
                progress("landmarks", i + 1, 0)
    finally:
        close = getattr(detector, "close", None)
        if close is not None:
            close()
    if not rows:
        raise InputError("the video holds no frames", "pass a video with at least one frame")
    return _stack_detections(rows, names), names


def _choose_schema(landmarks: dict[str, LandmarkSet], model: MorphableModel, frame_count: int, dense: bool) -> LandmarkSet:
    lms = landmarks[choose_schema(list(landmarks), model, dense)]
    if lms.points.shape[0] != frame_count:
        raise InputError(f"the landmarks cover {lms.points.shape[0]} frames but the video has {frame_count}",
                         "give landmarks for every frame (named frame000000, frame000001, ...)")
    return lms


def _interpolate_gaps(result: TrackResult, max_gap: int) -> None:
    """Fill :data:`MISSING` frames in place: short gaps between tracked frames linearly (the
    rotation along the geodesic), the rest with the nearest tracked frame's values."""
    tracked = np.flatnonzero(result.status == TRACKED)
    missing = np.flatnonzero(result.status == MISSING)
    if missing.size == 0 or tracked.size == 0:
        return
    after = np.searchsorted(tracked, missing)
    left = tracked[np.clip(after - 1, 0, tracked.size - 1)]
    right = tracked[np.clip(after, 0, tracked.size - 1)]
    inside = (after > 0) & (after < tracked.size)
    short = inside & (right - left - 1 <= max_gap)
    nearest = np.where(missing - left <= right - missing, 0.0, 1.0)  # left == right outside the tracked span
    t = np.where(short, (missing - left) / np.maximum(right - left, 1), nearest)
    w = torch.as_tensor(t, dtype=result.expression.dtype, device=result.expression.device)
    li, ri, mi = (torch.as_tensor(a, device=result.expression.device) for a in (left, right, missing))
    for name in ("translation", "expression", "sh", "focal"):
        v = getattr(result, name)
        shape = (-1,) + (1,) * (v.ndim - 1)
        v[mi] = v[li] + (v[ri] - v[li]) * w.reshape(shape)
    ra, rb = axis_angle_to_matrix(result.rotation[li]), axis_angle_to_matrix(result.rotation[ri])
    delta = matrix_to_axis_angle(rb @ ra.transpose(1, 2))
    result.rotation[mi] = matrix_to_axis_angle(axis_angle_to_matrix(delta * w[:, None]) @ ra)
    result.status[missing[short]] = INTERPOLATED


def track_frames(
    frames: Frames,
    config: Config,
    *,
    registry: PluginRegistry | None = None,
    model: MorphableModel | None = None,
    renderer: Renderer | None = None,
    identity: Identity | None = None,
    landmarks: dict[str, LandmarkSet] | None = None,
    fps: float = 25.0,
    progress: Progress | None = None,
) -> TrackResult:
    """Track the face through ``frames`` (``[H,W,3]`` uint8 sRGB, one size).

    ``landmarks``: ``{schema: LandmarkSet}`` over all frames in original-frame pixels
    (rows in frame order) instead of running the detector. ``identity``: skip the keyframe
    fit. Model and renderer come from the registry unless given.
    """
    settings = TrackSettings.from_config(config)
    registry = registry or PluginRegistry()
    device = torch.device(resolve_device(config))
    model = prepare_model(model or registry.create("model", config.run.model, config), config).to(device)
    renderer = renderer or registry.create("renderer", config.run.renderer, config)
    t0 = time.perf_counter()
    if landmarks is None:
        landmarks, names = detect_frames(frames, config, registry, progress)
    else:
        names = [frame_name(i) for i in range(next(iter(landmarks.values())).points.shape[0])]
    detect_seconds = time.perf_counter() - t0
    lms = _choose_schema(landmarks, model, len(names), config.landmarks.dense)
    found = lms.found.tolist()
    if not any(found):
        raise InputError(f"no face found in any of the {len(names)} frames", "check the video, or the --landmarks detector")

    t0, keys = time.perf_counter(), []
    if identity is None:
        keys = keyframe_indices(found, settings.keyframes)
        chosen = set(keys)
        key_frames = [f for i, f in enumerate(frames()) if i in chosen]
        idx = torch.as_tensor(keys)
        subset = {s: LandmarkSet(s, ls.points[idx], ls.confidence[idx], ls.found[idx], [names[i] for i in keys])
                  for s, ls in landmarks.items()}
        from ..fitting import Fitter

        fitter = Fitter(config, registry=registry, model=model, renderer=renderer)
        with torch_threads(settings.threads):
            identity = fit_identity(fitter, key_frames, subset, [names[i] for i in keys])
    identity = identity.to(device, model.dtype).check(model)
    identity_seconds = time.perf_counter() - t0

    tracker: Tracker | None = None
    count = len(names)
    dt = model.dtype
    status = np.full(count, MISSING, dtype=np.int8)
    seconds, cpu_seconds, errors = np.zeros(count), np.zeros(count), np.full(count, np.nan)
    per_frame: list[SceneParameters | None] = [None] * count
    projected: list[torch.Tensor | None] = [None] * count
    detected = torch.zeros(count, lms.points.shape[1], 2, dtype=dt)
    scale, size = 1.0, None
    for i, frame in enumerate(frames()):
        if i >= count:
            raise InputError(f"the video gave more frames on a later read than the first ({count})",
                             "re-encode the video (its frame count is unstable)")
        start, cpu_start = time.perf_counter(), time.process_time()
        batch = make_batch([frame], [names[i]], settings.resolution, device, dt)
        if tracker is None:
            size, scale = batch.image_size, batch.scales[0]
            tracker = Tracker(config, model, renderer, identity, size, lms.schema)
        elif batch.image_size != size:
            raise InputError(f"frame {i} is {batch.sizes[0][1]}×{batch.sizes[0][0]} after scaling, earlier frames {size[1]}×{size[0]}",
                             "use a video whose frames all have one size")
        targets = lms.points[i : i + 1].to(device, dt) * scale
        detected[i] = targets[0].cpu()
        if found[i]:
            fit = tracker.track(batch.images, batch.valid, targets, lms.confidence[i : i + 1].to(device, dt))
            per_frame[i], projected[i], errors[i] = fit.params, fit.landmarks[0], fit.landmark_error_px
            status[i] = TRACKED
        else:
            tracker.lost()
        seconds[i], cpu_seconds[i] = time.perf_counter() - start, time.process_time() - cpu_start
        if progress is not None:
            progress("track", i + 1, count)
    assert tracker is not None
    first = next(p for p in per_frame if p is not None)
    filled = [p if p is not None else first for p in per_frame]
    rows = tracker.rows.landmark_index.shape[0]
    proj = torch.stack([p if p is not None else torch.full((rows, 2), float("nan"), dtype=dt, device=device) for p in projected])
    result = TrackResult(
        identity=identity, schema=lms.schema, fps=fps, image_size=size, scale=scale,
        rotation=torch.cat([p.rotation for p in filled]), translation=torch.cat([p.translation for p in filled]),
        expression=torch.cat([p.expression for p in filled]), sh=torch.cat([p.sh for p in filled]),
        focal=torch.cat([p.focal for p in filled]), status=status, landmarks_detected=detected,
        landmarks_projected=proj, landmark_index=tracker.rows.landmark_index, landmark_error_px=errors, seconds=seconds,
        cpu_seconds=cpu_seconds,
        scene=tracker.scene, renderer=renderer, config=config, model=model, identity_seconds=identity_seconds,
        detect_seconds=detect_seconds, keyframes=keys,
    )
    _interpolate_gaps(result, settings.max_gap)
    return result
