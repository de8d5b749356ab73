"""The plugin test kit: a fresh registry and contract checks a plugin runs against itself.

A plugin author's test is usually three lines::

    import my_plugin
    from nextface_core.testing.kit import check_plugin

    def test_contract():
        check_plugin(my_plugin, "renderer", "mine")

:func:`check_plugin` registers the plugin on a fresh :class:`PluginRegistry` (no installed
plugins, no environment variables), checks that the name is listed and its availability
check answers, builds the object with the default config and runs the contract of its
kind: :func:`check_renderer`, :func:`check_detector`, :func:`check_model` or
:func:`check_loss`. Each contract collects every failed check and raises one
:class:`ContractError` listing them all (with what was expected), or returns the names of
the checks that passed.

The scenes come from the core's synthetic face (:func:`nextface_core.synthetic.synthetic_model`
with :func:`nextface_core.synthetic.synthetic_scene`), so no model download is needed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..config import Config, load_config
from ..errors import ConfigError
from ..fitting.scene import FaceScene
from ..landmarks import LandmarkDetector, LandmarkSet
from ..losses import LossContext, LossTerm
from ..mesh import symmetry_map
from ..options import describe_options, parse_options
from ..model import MorphableModel, combine
from ..params import SceneParameters
from ..plugins import KIND_HOOKS, PluginRegistry
from ..render import Renderer, RenderInputs, RenderMode, RenderOutput, RenderSettings
from ..synthetic import render_synthetic, synthetic_model, synthetic_scene

#: texture resolution of the kit's synthetic scenes (small: the contracts are about behaviour)
KIT_TEXTURE_RESOLUTION = 64


class ContractError(AssertionError):
    """A plugin broke its contract; the message lists every failed check."""


def _skip(reason: str) -> None:
    """Skip the calling test (pytest is imported here: it is a test-only dependency)."""
    import pytest

    pytest.skip(reason)


def _skip_without(device: torch.device | str) -> None:
    """Skip the calling test when ``device`` is a CUDA device and there is none here."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        _skip(f"contract on {device} needs a CUDA device")


@dataclass
class _Checks:
    """Collects passed and failed checks of one contract run."""

    subject: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def expect(self, name: str, ok: bool, problem: str = "") -> bool:
        (self.passed if ok else self.failed).append(name if ok else f"{name}: {problem}")
        return ok

    def done(self) -> list[str]:
        if self.failed:
            lines = "\n  - ".join(self.failed)
            raise ContractError(f"{self.subject} broke {len(self.failed)} contract check(s):\n  - {lines}")
        return self.passed


# -- registry ---------------------------------------------------------------------------


def fresh_registry(*plugins: tuple[str, object], builtin: bool = True) -> PluginRegistry:
    """A registry holding only ``plugins`` (``(name, module or object)`` pairs) and, with
    ``builtin``, the core's own plugin: no installed entry points, no NEXTFACE_* variables,
    no state shared with other tests."""
    return PluginRegistry(plugins, entry_points=False, builtin=builtin, env={})


def check_plugin(
    plugin: object,
    kind: str,
    name: str,
    config: Config | None = None,
    plugin_name: str = "plugin_under_test",
    **contract_options: Any,
) -> list[str]:
    """Register ``plugin`` on a fresh registry, check that ``kind`` ``name`` is listed with
    a description and an answering availability check, that its declared options (if any)
    are well formed (:func:`check_options`), build it with ``config`` (default: the packaged
    defaults; its options come from ``[plugins.<plugin_name>]``) and run the contract of
    ``kind``. Returns the passed checks."""
    if kind not in KIND_HOOKS:
        raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(KIND_HOOKS)}")
    config = config or load_config()
    registry = fresh_registry((plugin_name, plugin), builtin=False)
    checks = _Checks(f"{kind} '{name}' of plugin {plugin_name}")
    listed = registry.names(kind)  # runs the registration hooks; a hook that raises is recorded as broken
    broken = [b.error for b in registry.broken]
    checks.expect("plugin loads", not broken, "; ".join(broken))
    if not checks.expect("name registered", name in listed, f"registered {kind}s are {listed}"):
        checks.done()
    reg = registry.resolve(kind, name)
    checks.expect("has a description", bool(reg.description.strip()), "pass description= to register()")
    availability = reg.availability()
    checks.expect(
        "availability check answers",
        not availability.detail.startswith("check failed"),
        availability.detail,
    )
    info = [p for p in registry.plugins() if p.name == plugin_name]
    checks.expect("listed with its hook", bool(info) and KIND_HOOKS[kind] in info[0].hooks, "hook missing from plugins()")
    if reg.options is not None:
        problems = _option_problems(reg.options)
        checks.expect("options well formed", not problems, "; ".join(problems))
    checks.done()
    if not availability.ok:
        _skip(f"{kind} '{name}' is not available here: {availability.detail}")
    built = reg.build(config)
    contract: dict[str, Callable[..., list[str]]] = {
        "renderer": check_renderer,
        "detector": check_detector,
        "model": check_model,
        "loss": check_loss,
    }
    if kind == "loss":
        contract_options.setdefault("config", config)
    return checks.passed + contract[kind](built, **contract_options)


def _option_problems(options: type) -> list[str]:
    """What is wrong with an options class: not a frozen dataclass, a field without help, a
    default that its own rule refuses (empty when it is well formed)."""
    if not (dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):
        return [f"{getattr(options, '__name__', options)!r} must be a frozen dataclass (@dataclass(frozen=True))"]
    try:
        infos = describe_options(options)
    except TypeError as exc:
        return [str(exc)]
    problems = [f"option {i.name} has no help: declare it with option(default, help)" for i in infos if not i.help.strip()]
    try:
        parse_options(options, {i.name: list(i.default) if isinstance(i.default, tuple) else i.default for i in infos}, "plugin")
    except ConfigError as exc:
        problems.append(f"a default breaks its own rule: {exc}")
    return problems


def check_options(options: type) -> list[str]:
    """Check an options class on its own (:func:`check_plugin` runs this for a plugin that
    registered ``options=``): a frozen dataclass whose fields all have help and defaults
    their own rules accept. Raises :class:`ContractError` listing the problems."""
    checks = _Checks(f"options {getattr(options, '__name__', options)}")
    problems = _option_problems(options)
    checks.expect("options well formed", not problems, "; ".join(problems))
    return checks.done()


# -- synthetic scenes -------------------------------------------------------------------


def synthetic_params(model: MorphableModel, seeds: Sequence[int] = (0, 1), image_size: int = 64, bands: int = 3) -> SceneParameters:
    """One :func:`~nextface_core.synthetic.synthetic_scene` per seed, stacked into a batch of
    ``len(seeds)`` images with one identity each."""
    scenes = [synthetic_scene(model, image_size=image_size, seed=s, bands=bands) for s in seeds]
    stacked = {k: torch.cat([getattr(p, k) for p in scenes]) for k in scenes[0].tensors()}
    return SceneParameters(**stacked)


def synthetic_render_inputs(
    batch: int = 2,
    image_size: int = 48,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    mode: RenderMode = RenderMode.FULL,
    bands: int = 3,
) -> tuple[RenderInputs, RenderSettings]:
    """:class:`RenderInputs` of ``batch`` different synthetic faces (pose, identity,
    expression, light), per-image diffuse textures ``[B,T,T,3]`` and a shared
    specular/roughness ``[1,T,T,C]`` (leaves with no gradient), with the
    :class:`RenderSettings` they were made for: ``image_size`` pixels square, 4 samples,
    seed 0, ``mode``."""
    model = synthetic_model("small", dtype=dtype, device=device)
    params = synthetic_params(model, range(batch), image_size, bands)
    pp = torch.full((batch, 2), image_size / 2.0, dtype=dtype, device=device)
    scene = FaceScene(model, (image_size, image_size), pp, KIT_TEXTURE_RESOLUTION)
    with torch.no_grad():
        diffuse, specular = scene.albedo_textures(params)
        roughness = torch.full((1, *specular.shape[1:3], 1), 0.4, dtype=dtype, device=device)
        inputs = scene.render_inputs(params, diffuse, specular[:1], roughness)
    return inputs, scene.render_settings(samples=4, seed=0, mode=mode)


def synthetic_face_images(count: int = 2, size: int = 96, renderer: Renderer | None = None) -> list[np.ndarray]:
    """``count`` different synthetic faces as ``[size,size,3]`` uint8 sRGB photos (for
    detector tests), rendered by ``renderer`` (default: the installed ``vertex`` renderer)."""
    config = load_config(overrides={"run.device": "cpu", "light.bands": 3})
    if renderer is None:
        renderer = PluginRegistry(env={}).create("renderer", "vertex", config)
    model = synthetic_model("small")
    return [
        render_synthetic(model, synthetic_scene(model, image_size=size, seed=s, bands=3), renderer, config, image_size=size)[0]
        for s in range(count)
    ]


def _image_rows(inputs: RenderInputs, i: int) -> RenderInputs:
    """Image ``i`` of a batch as a batch of one (shared textures stay shared)."""
    def rows(t: torch.Tensor) -> torch.Tensor:
        return t[i : i + 1] if t.shape[0] == inputs.batch_size and inputs.batch_size > 1 else t

    return replace(
        inputs,
        vertices=inputs.vertices[i : i + 1],
        normals=inputs.normals[i : i + 1],
        diffuse=rows(inputs.diffuse),
        specular=rows(inputs.specular),
        roughness=rows(inputs.roughness),
        sh=inputs.sh[i : i + 1],
        focal=inputs.focal[i : i + 1],
        principal_point=inputs.principal_point[i : i + 1],
    )


# -- renderer ---------------------------------------------------------------------------


#: how much brighter than coverage × the brightest pixel a pixel may be (a ray tracer's noise)
PREMULTIPLIED_SLACK = 0.05


def check_renderer(
    renderer: Renderer,
    *,
    device: torch.device | str = "cpu",
    dtypes: Sequence[torch.dtype] = (torch.float32,),
    image_size: int = 48,
    atol: float = 1e-4,
) -> list[str]:
    """The renderer contract on two synthetic faces per dtype:

    - ``render`` returns a :class:`RenderOutput` with ``image [B,H,W,3]`` and ``mask
      [B,H,W,1]`` of the input dtype, on the input device, finite, mask in [0, 1], the face
      covering part (not all) of each image;
    - the image is premultiplied by coverage (the face over black, see :class:`RenderOutput`):
      no pixel is brighter than its coverage times the brightest pixel (5 % slack for noise);
    - every :class:`RenderMode` renders with those shapes;
    - gradients flow, finite and not all zero, to vertices, diffuse texture, SH and focal;
    - batch equals per-image: rendering the two faces together equals rendering each
      alone (``atol``; stochastic renderers get the same ``seed`` in both).
    """
    _skip_without(device)
    checks = _Checks(f"renderer {getattr(renderer, 'name', type(renderer).__name__)!r}")
    checks.expect("has a name", isinstance(getattr(renderer, "name", None), str), "set a class attribute name = '...'")
    for dtype in dtypes:
        tag = str(dtype).replace("torch.", "")
        inputs, settings = synthetic_render_inputs(2, image_size, device, dtype)
        b, h, w = inputs.batch_size, image_size, image_size
        out = renderer.render(inputs, settings)
        if not checks.expect(f"{tag}: returns RenderOutput", isinstance(out, RenderOutput), f"got {type(out).__name__}"):
            continue
        checks.expect(f"{tag}: image shape", tuple(out.image.shape) == (b, h, w, 3), f"{tuple(out.image.shape)} != {(b, h, w, 3)}")
        checks.expect(f"{tag}: mask shape", tuple(out.mask.shape) == (b, h, w, 1), f"{tuple(out.mask.shape)} != {(b, h, w, 1)}")
        for part in ("image", "mask"):
            t = getattr(out, part)
            checks.expect(f"{tag}: {part} dtype", t.dtype == dtype, f"{t.dtype} != input dtype {dtype}")
            checks.expect(f"{tag}: {part} device", t.device == inputs.vertices.device, f"{t.device} != {inputs.vertices.device}")
            checks.expect(f"{tag}: {part} finite", bool(torch.isfinite(t).all()), "NaN or inf values")
        m = out.mask.detach()
        checks.expect(f"{tag}: mask in [0, 1]", bool(((m >= 0) & (m <= 1)).all()), f"range [{float(m.min())}, {float(m.max())}]")
        cover = m.mean(dim=(1, 2, 3))
        checks.expect(
            f"{tag}: face covers part of each image",
            bool(((cover > 0.05) & (cover < 0.95)).all()),
            f"coverage per image {cover.tolist()} (a synthetic face fills about a third)",
        )
        image = out.image.detach()
        peak = float(image.max())
        excess = float((image.amax(-1, keepdim=True) - m * peak).max())
        checks.expect(
            f"{tag}: image premultiplied by coverage",
            excess <= 1e-4 + PREMULTIPLIED_SLACK * peak,
            f"a pixel is {excess:.3g} brighter than its coverage × the brightest pixel allows: return colour × coverage",
        )
        for mode in (RenderMode.ALBEDO, RenderMode.LIGHTING):
            other = renderer.render(inputs, replace(settings, mode=mode))
            checks.expect(
                f"{tag}: mode {mode.value} shapes",
                tuple(other.image.shape) == (b, h, w, 3) and tuple(other.mask.shape) == (b, h, w, 1),
                f"image {tuple(other.image.shape)}, mask {tuple(other.mask.shape)}",
            )
        _check_renderer_gradients(renderer, inputs, settings, checks, tag)
        singles = [renderer.render(_image_rows(inputs, i), settings) for i in range(b)]
        for part in ("image", "mask"):
            alone = torch.cat([getattr(s, part) for s in singles]).detach()
            err = float((getattr(out, part).detach() - alone).abs().max())
            checks.expect(f"{tag}: batch equals per-image ({part})", err <= atol, f"max difference {err:.3g} > {atol}")
    return checks.done()


def _check_renderer_gradients(renderer: Renderer, inputs: RenderInputs, settings: RenderSettings, checks: _Checks,
                              tag: str) -> None:
    leaves = {k: getattr(inputs, k).detach().clone().requires_grad_(True) for k in ("vertices", "diffuse", "sh", "focal")}
    out = renderer.render(replace(inputs, **leaves), settings)
    weights = torch.linspace(0.5, 1.5, out.image.numel(), dtype=out.image.dtype, device=out.image.device)
    loss = (out.image.reshape(-1) * weights).sum() + out.mask.sum()
    if not checks.expect(f"{tag}: output requires grad", loss.requires_grad, "the output is detached from the inputs"):
        return
    loss.backward()
    for name, leaf in leaves.items():
        g = leaf.grad
        ok = g is not None and bool(torch.isfinite(g).all()) and bool((g != 0).any())
        problem = "no gradient" if g is None else ("non-finite gradient" if not torch.isfinite(g).all() else "gradient is all zero")
        checks.expect(f"{tag}: gradient flows to {name}", ok, problem)


# -- detector ---------------------------------------------------------------------------


def check_detector(
    detector: LandmarkDetector,
    images: Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    *,
    expect_found: Sequence[bool] | None = None,
    atol: float = 1e-3,
) -> list[str]:
    """The detector contract on ``images`` (``[H,W,3]`` uint8 sRGB, at least two):

    - ``detect`` returns a non-empty ``{schema: LandmarkSet}`` whose key is the set's schema,
      rows in the order of ``names``, float points ``[B,L,2]``, confidence in [0, 1],
      ``found`` bool; points of found faces finite and inside the image, rows without a
      face all zero with zero confidence;
    - ``expect_found`` (optional) says which images hold a face;
    - batch equals per-image: detecting each image alone gives the same rows (``atol`` px).
    """
    names = list(names) if names is not None else [f"image{i}" for i in range(len(images))]
    checks = _Checks(f"detector {getattr(detector, 'name', type(detector).__name__)!r}")
    checks.expect("has a name", isinstance(getattr(detector, "name", None), str), "set a class attribute name = '...'")
    if len(images) < 2:
        raise ValueError("check_detector needs at least two images to compare batch and per-image results")
    result = detector.detect(list(images), names)
    if not checks.expect("returns a non-empty dict", isinstance(result, dict) and bool(result), f"got {result!r:.80}"):
        return checks.done()
    for schema, ls in result.items():
        if not checks.expect(f"{schema}: is a LandmarkSet", isinstance(ls, LandmarkSet), f"got {type(ls).__name__}"):
            continue
        checks.expect(f"{schema}: key is the schema", ls.schema == schema, f"set schema {ls.schema!r} under key {schema!r}")
        checks.expect(f"{schema}: names in order", list(ls.names) == names, f"{ls.names} != {names}")
        checks.expect(f"{schema}: float points", ls.points.is_floating_point(), f"points dtype {ls.points.dtype}")
        checks.expect(f"{schema}: found is bool", ls.found.dtype == torch.bool, f"found dtype {ls.found.dtype}")
        c = ls.confidence
        checks.expect(f"{schema}: confidence in [0, 1]", bool(((c >= 0) & (c <= 1)).all()), "confidence out of range")
        if expect_found is not None:
            checks.expect(f"{schema}: found", ls.found.tolist() == list(expect_found), f"{ls.found.tolist()} != {list(expect_found)}")
        for i, (image, found) in enumerate(zip(images, ls.found.tolist())):
            p = ls.points[i]
            if found:
                h, w = image.shape[:2]
                used = ls.confidence[i] > 0
                inside = bool(torch.isfinite(p).all()) and bool(
                    ((p[used, 0] >= 0) & (p[used, 0] <= w) & (p[used, 1] >= 0) & (p[used, 1] <= h)).all()
                )
                checks.expect(f"{schema}: image {i} points inside the image", inside, f"points outside [0,{w}]×[0,{h}] or not finite")
            else:
                checks.expect(
                    f"{schema}: image {i} without a face is zero",
                    bool((p == 0).all()) and bool((ls.confidence[i] == 0).all()),
                    "rows of images without a face must hold zeros",
                )
    singles = [detector.detect([im], [n]) for im, n in zip(images, names)]
    for schema, ls in result.items():
        if not isinstance(ls, LandmarkSet):
            continue
        rows = [s.get(schema) for s in singles]
        if not checks.expect(f"{schema}: per-image calls return it", all(r is not None for r in rows), "schema missing when alone"):
            continue
        alone = torch.cat([r.points for r in rows])
        err = float((ls.points - alone).abs().max()) if alone.shape == ls.points.shape else math.inf
        checks.expect(f"{schema}: batch equals per-image", err <= atol, f"max difference {err:.3g} px > {atol}")
    return checks.done()


# -- model ------------------------------------------------------------------------------


def check_model(model: MorphableModel, *, device: torch.device | str = "cpu", atol: float = 1e-3) -> list[str]:
    """The model contract:

    - a :class:`MorphableModel` with floating tensors of one dtype, int64 faces indexing
      existing vertices with three distinct corners, uv in [0, 1], finite positive
      variances, landmark and symmetry indices in range (symmetry an involution);
    - Basel frame: millimetres (largest extent 50–500), mirror plane x = 0 (mirroring x
      fits better than y or z), nose tip (largest z) near the mirror plane;
    - moves: ``to(device, float64)`` keeps shapes, puts every tensor on ``device``;
    - gradients flow from vertices to shape and expression coefficients;
    - batch equals per-image: :func:`combine` of two coefficient rows equals each alone.
    """
    _skip_without(device)
    checks = _Checks(f"model {getattr(model, 'name', '?')!r}")
    if not checks.expect("is a MorphableModel", isinstance(model, MorphableModel), f"got {type(model).__name__}"):
        return checks.done()
    n = model.n_vertices
    dtypes = {t.dtype for t in (model.shape_mean, model.shape_basis, model.expression_basis, model.diffuse_mean, model.uv)}
    checks.expect("one floating dtype", len(dtypes) == 1 and next(iter(dtypes)).is_floating_point, f"dtypes {dtypes}")
    f = model.faces
    checks.expect("faces int64", f.dtype == torch.int64, f"faces dtype {f.dtype}")
    checks.expect("faces index vertices", bool(((f >= 0) & (f < n)).all()), f"indices outside [0, {n})")
    distinct = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    checks.expect("faces have three distinct corners", bool(distinct.all()), f"{int((~distinct).sum())} degenerate faces")
    checks.expect("uv in [0, 1]", bool(((model.uv >= 0) & (model.uv <= 1)).all()), "uv outside the unit square")
    for name in ("shape_var", "expression_var", "diffuse_var", "specular_var"):
        v = getattr(model, name)
        checks.expect(f"{name} finite and positive", bool(torch.isfinite(v).all() and (v > 0).all()), "variances must be > 0")
    for schema, assoc in model.landmarks.items():
        vi, li = assoc.vertex_index, assoc.landmark_index
        checks.expect(f"landmarks {schema}: vertices in range", bool(((vi >= 0) & (vi < n)).all()), f"outside [0, {n})")
        checks.expect(f"landmarks {schema}: unique indices", li.unique().numel() == li.numel() and bool((li >= 0).all()), "repeated or negative")
    if model.symmetry is not None:
        s = model.symmetry
        ok = bool(((s >= 0) & (s < n)).all()) and bool((s[s] == torch.arange(n, device=s.device)).all())
        checks.expect("symmetry is an involution", ok, "symmetry[symmetry[i]] must be i")
    mean = model.shape_mean.detach().double().cpu()
    extent = float((mean.max(0).values - mean.min(0).values).max())
    checks.expect("millimetres", 50.0 <= extent <= 500.0, f"largest extent {extent:.4g}; convert to mm (Basel convention)")
    residual = [float(symmetry_map(mean, axis)[1].mean()) for axis in range(3)]
    checks.expect("mirror plane x = 0", int(np.argmin(residual)) == 0, f"mirror residuals x/y/z {residual}: x must be left-right")
    tip = mean[int(mean[:, 2].argmax())]
    checks.expect("nose tip near x = 0 (+z out of the face)", abs(float(tip[0])) < 0.1 * extent, f"largest-z vertex at x = {float(tip[0]):.1f}")
    moved = model.to(device, torch.float64)
    checks.expect("to(device, float64)", moved.shape_mean.dtype == torch.float64 and moved.faces.dtype == torch.int64, "dtype not applied")
    on_device = moved.device.type == torch.device(device).type and moved.faces.device == moved.device
    checks.expect("tensors on device", on_device, f"on {moved.device}, asked for {device}")
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(2, model.n_shape, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    expr = torch.randn(2, model.n_expression, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    verts = combine(moved.shape_mean, moved.shape_basis, moved.shape_var, shape) + combine(
        torch.zeros_like(moved.shape_mean), moved.expression_basis, moved.expression_var, expr
    )
    verts.square().sum().backward()
    for name, leaf in (("shape", shape), ("expression", expr)):
        grad_ok = leaf.grad is not None and bool(torch.isfinite(leaf.grad).all()) and bool((leaf.grad != 0).any())
        checks.expect(f"gradient flows to {name}", grad_ok or leaf.shape[1] == 0, "zero or missing gradient")
    with torch.no_grad():
        alone = torch.cat([combine(moved.shape_mean, moved.shape_basis, moved.shape_var, shape[i : i + 1]) for i in range(2)])
        batch = combine(moved.shape_mean, moved.shape_basis, moved.shape_var, shape)
    err = float((batch - alone).abs().max())
    checks.expect("batch equals per-image", err <= atol, f"max difference {err:.3g} mm")
    return checks.done()


# -- loss -------------------------------------------------------------------------------


def synthetic_loss_context(
    stage: int, batch: int = 1, image_size: int = 32, texture: int = 16, dtype: torch.dtype = torch.float64, seed: int = 0
) -> LossContext:
    """A :class:`LossContext` with every field set (render, images, maps), all tensors
    leaves requiring grad; rows are copies of one image, so a per-image mean loss gives
    the same value for any ``batch``."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        t = torch.rand(*shape[1:], generator=g, dtype=dtype) * scale
        return t.expand(batch, *shape[1:]).clone().requires_grad_(True)

    focal = torch.full((batch,), 2.0 * image_size, dtype=dtype)
    params = SceneParameters.neutral(batch, 6, 4, 5, 4, focal, distance=500.0)  # 4 bands: light terms on bands ≥ 3 see a light
    for name, t in params.tensors().items():
        noisy = t + torch.randn(t.shape[1:], generator=g, dtype=dtype) * 0.3
        setattr(params, name, noisy.detach().clone().requires_grad_(True))
    maps = {"diffuse": rand(batch, texture, texture, 3), "specular": rand(batch, texture, texture, 3, scale=0.3),
            "roughness": rand(batch, texture, texture, 1)}
    return LossContext(
        stage=stage,
        params=params,
        landmarks=rand(batch, 68, 2, scale=image_size),
        landmark_targets=rand(batch, 68, 2, scale=image_size).detach(),
        landmark_weights=torch.ones(batch, 68, dtype=dtype),
        image_scale=torch.full((batch,), float(image_size), dtype=dtype),
        render=RenderOutput(rand(batch, image_size, image_size, 3), rand(batch, image_size, image_size, 1)),
        images=rand(batch, image_size, image_size, 3).detach(),
        valid=torch.ones(batch, image_size, image_size, 1, dtype=dtype),
        maps=maps,
        maps_initial={k: (v.detach() * 0.9) for k, v in maps.items()},
    )


def check_loss(term: LossTerm, *, config: Config | None = None, atol: float = 1e-9) -> list[str]:
    """The loss contract, in every stage where ``term.weight(config, stage) > 0``:

    - a non-empty ``name``; ``weight`` returns a finite float >= 0 for stages 1–3 with
      ``config`` (default: the packaged defaults; a term off in every stage is checked in all);
    - the value is a finite scalar tensor of the context's dtype that backpropagates
      finite gradients (to at least one input);
    - batch equals per-image: a batch of two copies of one image gives the same value as
      that image alone (a per-image mean, so weights do not depend on batch size).
    """
    config = config or load_config()
    checks = _Checks(f"loss term {getattr(term, 'name', type(term).__name__)!r}")
    checks.expect("has a name", isinstance(getattr(term, "name", None), str) and bool(term.name), "set name = '...'")
    weights = {s: term.weight(config, s) for s in (1, 2, 3)}
    for s, w in weights.items():
        checks.expect(f"stage {s}: weight is a float >= 0", isinstance(w, (int, float)) and math.isfinite(w) and w >= 0, f"got {w!r}")
    active = [s for s, w in weights.items() if isinstance(w, (int, float)) and w > 0] or [1, 2, 3]
    for s in active:
        one, two = synthetic_loss_context(s, batch=1), synthetic_loss_context(s, batch=2)
        value = term(one)
        if not checks.expect(f"stage {s}: returns a tensor", isinstance(value, torch.Tensor), f"got {type(value).__name__}"):
            continue
        checks.expect(f"stage {s}: scalar", value.ndim == 0, f"shape {tuple(value.shape)}; reduce to a scalar")
        checks.expect(f"stage {s}: finite", bool(torch.isfinite(value).all()), f"value {value}")
        checks.expect(f"stage {s}: dtype", value.dtype == torch.float64, f"{value.dtype} != the context's float64")
        if checks.expect(f"stage {s}: differentiable", value.requires_grad, "the value is detached from the fit state"):
            value.sum().backward()
            leaves = [*one.params.tensors().values(), one.landmarks, one.render.image, one.render.mask, *one.maps.values()]
            grads = [t.grad for t in leaves if t.grad is not None]
            checks.expect(f"stage {s}: gradient reaches an input", any(bool((g != 0).any()) for g in grads), "all gradients zero")
            checks.expect(f"stage {s}: finite gradients", all(bool(torch.isfinite(g).all()) for g in grads), "NaN/inf gradient")
        value, doubled = value.detach(), term(two)
        if not checks.expect(f"stage {s}: batch of 2 returns a scalar", isinstance(doubled, torch.Tensor) and doubled.numel() == 1, "not a scalar"):
            continue
        err = float((doubled.detach() - value).abs())
        checks.expect(f"stage {s}: batch equals per-image", err <= atol * max(1.0, abs(float(value))), f"2 copies give {float(doubled.detach()):.6g} vs {float(value):.6g}")
    return checks.done()


__all__ = [
    "ContractError",
    "KIT_TEXTURE_RESOLUTION",
    "check_detector",
    "check_loss",
    "check_model",
    "check_options",
    "check_plugin",
    "check_renderer",
    "fresh_registry",
    "synthetic_face_images",
    "synthetic_loss_context",
    "synthetic_params",
    "synthetic_render_inputs",
]
