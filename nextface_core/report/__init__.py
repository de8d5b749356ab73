"""``report.html``: self-contained pages to look at results, offline.

Every page inlines what it shows — images as data URIs, the mesh as a ``.glb`` data URI,
the 3D viewer (``@google/model-viewer``, vendored from npm by ``setup.sh`` into
``vendor/``) — so it opens from the disk with no network. Pages are rebuilt from the files
of an output folder alone (``nextface report OUT``), so the report a run writes and the one
rebuilt later are the same:

- a fit: ``OUT/NAME/report.html`` per image (input, overlay, re-render, the maps, the env
  map, landmarks, metrics, loss curves, 3D view of ``mesh.glb``) and ``OUT/report.html``,
  the run's overview with a gallery sortable by landmark error or PSNR;
- a track: ``OUT/report.html`` (counts, per-frame curves, the animated ``track.glb``);
- a dataset: ``OUT/report.html``, a gallery of every finished image linking to its page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..errors import InputError
from ..files import write_text

VIEWER_FILE = "model-viewer.min.js"
REPORT_FILE = "report.html"
_MISSING_VIEWER = "3D view unavailable: the viewer's JavaScript is not installed (run ./setup.sh, which fetches it from npm)"


def viewer_script() -> str | None:
    """The vendored model-viewer bundle, or None when ``setup.sh`` could not fetch it."""
    path = resources.files(__package__) / "vendor" / VIEWER_FILE
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")


@dataclass
class GalleryRow:
    """One image of a gallery: name, link to its page, thumbnail ``src`` (data URI or relative
    path), and its metrics (None where not measured)."""

    name: str
    href: str
    thumbnail: str
    landmark_error_px: float | None
    landmark_error_iod_percent: float | None
    psnr_db: float | None


# -- building blocks ------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
figure{display:inline-block;margin:0 .8em .8em 0;vertical-align:top}
figure img{max-width:340px;height:auto;border:1px solid #ccc;background:#fff;display:block}
figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th[data-sort]{cursor:pointer;text-decoration:underline dotted}td.num{text-align:right;font-variant-numeric:tabular-nums}
model-viewer{width:480px;height:480px;background:#ffffff;border:1px solid #ccc;display:block}
.note{color:#a40}
"""

_SORT_JS = """
for (const th of document.querySelectorAll('th[data-sort]')) {
  th.addEventListener('click', () => {
    const table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
    const up = th.dataset.dir !== 'up';
    th.dataset.dir = up ? 'up' : 'down';
    const key = (row) => { const v = parseFloat(row.cells[col].dataset.value); return isNaN(v) ? Infinity : v; };
    [...body.rows].sort((a, b) => (up ? 1 : -1) * (key(a) - key(b))).forEach((row) => body.appendChild(row));
  });
}
"""

_LIGHT_JS = """
for (const select of document.querySelectorAll('select[data-viewer]')) {
  select.addEventListener('change', () => {
    const viewer = document.getElementById(select.dataset.viewer);
    viewer.environmentImage = select.value === 'off' ? null : select.value;
    viewer.exposure = select.value === 'off' ? 0.0 : 1.0;
  });
}
"""


def _page(title: str, body: str, viewer: bool = False) -> str:
    script = ""
    if viewer:
        js = viewer_script()
        script = f'<script type="module">{js}</script>' if js else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style>{script}</head>'
            f'<body>{body}<script>{_SORT_JS}{_LIGHT_JS}</script></body></html>\n')


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_uri(path: Path) -> str | None:
    return data_uri(path.read_bytes(), "image/png") if path.is_file() else None


def _image_uri(image: Image.Image, max_side: int | None = None) -> str:
    if max_side is not None:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return data_uri(buf.getvalue(), "image/png")


def _figure(src: str | None, caption: str) -> str:
    if src is None:
        return ""
    return f'<figure><img src="{src}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return html.escape(str(value))


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td class=num>{_fmt(v, 4)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def viewer_html(glb: Path, element_id: str, animated: bool = False) -> str:
    """A model-viewer element showing ``glb`` (inlined), with orbit and zoom, and a light switch."""
    if not glb.is_file():
        return f'<p class="note">no {html.escape(glb.name)} in this folder</p>'
    if viewer_script() is None:
        return f'<p class="note">{html.escape(_MISSING_VIEWER)}</p>'
    extra = " autoplay" if animated else ""
    return (f'<model-viewer id="{element_id}" src="{data_uri(glb.read_bytes(), "model/gltf-binary")}" camera-controls '
            f'interaction-prompt="none" shadow-intensity="0" environment-image="neutral" '
            f'alt="3D view of {html.escape(glb.name)}"{extra}></model-viewer>'
            f'<p>drag to orbit, scroll to zoom · light <select data-viewer="{element_id}">'
            f'<option value="neutral">studio</option><option value="legacy">soft</option><option value="off">off</option>'
            f'</select></p>')


def gallery_html(rows: Sequence[GalleryRow]) -> str:
    """A table of the images, sortable by landmark error or PSNR (click a header)."""
    body = []
    for r in rows:
        values = (r.landmark_error_px, r.landmark_error_iod_percent, r.psnr_db)
        cells = "".join(f'<td class=num data-value="{"" if v is None else v}">{_fmt(v)}</td>' for v in values)
        body.append(f'<tr><td><a href="{html.escape(r.href)}"><img src="{html.escape(r.thumbnail)}" width=96 loading=lazy '
                    f'alt=""></a></td><td data-value=""><a href="{html.escape(r.href)}">{html.escape(r.name)}</a></td>{cells}</tr>')
    head = ("<tr><th>image</th><th>name</th><th data-sort>landmark error (px)</th><th data-sort>landmark error (% IOD)</th>"
            "<th data-sort>PSNR (dB)</th></tr>")
    return f'<table class="gallery"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path.parent} holds no {path.name}", f"pass a folder written by 'nextface {what}'") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read: {exc}", f"rerun 'nextface {what}' to write it again") from None


# -- fit ------------------------------------------------------------------------------------

#: the tiles of composite.png, left to right (:func:`nextface_core.fitting.outputs.save_result` writes it)
COMPOSITE_TILES = ("input", "overlay", "re-render", "diffuse albedo", "specular albedo", "roughness")


def _loss_figures(root: Path) -> str:
    return "".join(_figure(_png_uri(p), f"stage {p.stem[-1]} loss (the whole batch)")
                   for p in sorted(root.glob("loss_stage*.png")))


def image_page(root: Path, name: str, summary: dict[str, Any]) -> str:
    """The page of image ``name`` of the fit in ``root``."""
    folder = root / name
    meta = _read_json(folder / "params.json", "fit")
    maps = folder if (folder / "diffuse.png").is_file() else root / "identity"
    tiles = ""
    if (folder / "composite.png").is_file():
        composite = Image.open(folder / "composite.png").convert("RGB")
        w = composite.width // len(COMPOSITE_TILES)
        tiles = "".join(_figure(_image_uri(composite.crop((i * w, 0, (i + 1) * w, composite.height))), t)
                        for i, t in enumerate(COMPOSITE_TILES[:3]))
    metrics = [
        ("landmark error (px)", meta.get("landmark_error_px")),
        ("landmark error (% inter-ocular)", meta.get("landmark_error_iod_percent")),
        ("masked PSNR (dB, sRGB)", meta.get("psnr_db")),
        ("face pixels", meta.get("coverage_pixels")),
        ("head rotation (deg)", meta.get("rotation_degrees")),
        ("focal length (px)", meta.get("focal")),
        ("image size (px)", "×".join(str(v) for v in meta.get("image_size", [])[::-1])),
        ("model", meta.get("model")),
        ("landmark schema", meta.get("landmark_schema")),
        ("shared identity", meta.get("shared_identity")),
    ]
    stages = [(f"stage {s['stage']}", "skipped" if s["skipped"] else f"{s['iterations']} iterations, {s['seconds']:.1f} s, "
               f"final loss {_fmt(s['final_loss'], 4)}") for s in summary.get("stages", [])]
    body = (
        f'<p><a href="../{REPORT_FILE}">← all images</a></p><h1>{html.escape(name)}</h1>'
        f"<h2>Photo, fit and re-render</h2>{tiles}"
        f'<h2>3D view</h2>{viewer_html(folder / "mesh.glb", "viewer")}'
        f'<h2>Maps and light</h2>{_figure(_png_uri(maps / "diffuse.png"), "diffuse albedo")}'
        f'{_figure(_png_uri(maps / "specular.png"), "specular albedo")}{_figure(_png_uri(maps / "roughness.png"), "roughness")}'
        f'{_figure(_png_uri(folder / "envmap.png"), "environment map (camera.json states its orientation)")}'
        f'<h2>Landmarks</h2>{_figure(_png_uri(folder / "landmarks.png"), "detected (green), each joined to the model point the fit projects for it (red; jaw-contour points in orange)")}'
        f"<h2>Metrics</h2>{_table(metrics)}<h2>Stages</h2>{_table(stages)}{_loss_figures(root)}"
    )
    return _page(f"NextFace fit: {name}", body, viewer=True)


def write_fit_report(root: str | Path) -> Path:
    """Write ``NAME/report.html`` for every image of the fit in ``root`` and the overview
    ``root/report.html``; returns the overview's path."""
    root = Path(root)
    summary = _read_json(root / "summary.json", "fit")
    rows = []
    for image in summary["images"]:
        name = image["name"]
        write_text(root / name / REPORT_FILE, image_page(root, name, summary))
        thumb = root / name / "landmarks.png"
        src = _image_uri(Image.open(thumb).convert("RGB"), 192) if thumb.is_file() else ""
        rows.append(GalleryRow(name, f"{name}/{REPORT_FILE}", src, image.get("landmark_error_px"),
                               image.get("landmark_error_iod_percent"), image.get("psnr_db")))
    stages = [(f"stage {s['stage']}", "skipped" if s["skipped"] else f"{s['iterations']} iterations, {s['seconds']:.1f} s")
              for s in summary.get("stages", [])]
    body = (f"<h1>NextFace fit: {len(rows)} image{'s' if len(rows) != 1 else ''}</h1>"
            f"<p>NextFace {html.escape(str(summary.get('version')))} · landmarks {html.escape(str(summary.get('schema')))} · "
            f"{'one shared identity' if summary.get('shared_identity') else 'one identity per image'} · "
            f"peak memory {_fmt(summary.get('peak_memory_mb'))} MB</p>"
            f"<h2>Images</h2>{gallery_html(rows)}<h2>Stages</h2>{_table(stages)}{_loss_figures(root)}")
    path = root / REPORT_FILE
    write_text(path, _page("NextFace fit", body))
    return path


# -- track ----------------------------------------------------------------------------------


def _svg_curves(times: np.ndarray, series: dict[str, np.ndarray], ylabel: str) -> str:
    """A small line chart of ``series`` (NaN = gap) over ``times`` as inline SVG."""
    w, h, pad = 560, 200, 36
    values = np.concatenate([v[np.isfinite(v)] for v in series.values()] or [np.zeros(1)])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    t0, t1 = float(times.min()), float(times.max()) if times.size > 1 else float(times.min()) + 1.0
    x = lambda t: pad + (w - 2 * pad) * (t - t0) / max(t1 - t0, 1e-9)  # noqa: E731
    y = lambda v: h - pad - (h - 2 * pad) * (v - lo) / (hi - lo)  # noqa: E731
    colours = ("#c33", "#3a3", "#36c", "#a6c", "#c80", "#088")
    lines, legend = [], []
    for i, (name, v) in enumerate(series.items()):
        pts = " ".join(f"{x(t):.1f},{y(val):.1f}" for t, val in zip(times, v) if np.isfinite(val))
        colour = colours[i % len(colours)]
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        legend.append(f'<text x="{pad + 90 * i}" y="14" fill="{colour}" font-size="12">{html.escape(name)}</text>')
    axes = (f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#999"/>'
            f'<text x="{pad}" y="{h - 8}" font-size="11">{t0:.2f} s</text><text x="{w - pad - 40}" y="{h - 8}" font-size="11">{t1:.2f} s</text>'
            f'<text x="2" y="{pad}" font-size="11">{hi:.3g}</text><text x="2" y="{h - pad}" font-size="11">{lo:.3g}</text>'
            f'<text x="{w / 2 - 40}" y="{h - 8}" font-size="11">{html.escape(ylabel)}</text>')
    return f'<svg width="{w}" height="{h}" style="background:#fff;border:1px solid #ccc">{axes}{"".join(lines)}{"".join(legend)}</svg>'


def write_track_report(root: str | Path) -> Path:
    """Write ``root/report.html`` for the track in ``root``."""
    root = Path(root)
    summary = _read_json(root / "track.json", "track")
    try:
        with np.load(root / "track.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("time_s", "euler_degrees", "translation", "landmark_error_px") if k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}/track.npz cannot be read: {exc}", "rerun 'nextface track' to write it again") from None
    t = arrays["time_s"]
    euler, translation = arrays["euler_degrees"], arrays["translation"]
    charts = (
        _svg_curves(t, {"pitch": euler[:, 0], "yaw": euler[:, 1], "roll": euler[:, 2]}, "head rotation (deg)")
        + _svg_curves(t, {a: translation[:, i] - translation[0, i] for i, a in enumerate("xyz")}, "translation from frame 0 (mm)")
        + _svg_curves(t, {"landmark error": arrays["landmark_error_px"]}, "landmark error (px)")
    )
    counts = summary.get("counts", {})
    facts = [
        ("video", summary.get("video")), ("frames", summary.get("frames")), ("fps", summary.get("fps")),
        ("tracked / interpolated / no face", f"{counts.get('tracked')} / {counts.get('interpolated')} / {counts.get('no face')}"),
        ("mean landmark error (px)", summary.get("mean_landmark_error_px")),
        ("tracking speed (frames/s)", summary.get("tracking_frames_per_second")),
        ("identity from", summary.get("identity")), ("model", summary.get("model")),
    ]
    video = ('<h2>Overlay video</h2><p><a href="overlay.mp4">overlay.mp4</a> (beside this page)</p>'
             if (root / "overlay.mp4").is_file() else "")
    body = (f"<h1>NextFace track</h1>{_table(facts)}"
            f'<h2>3D view (plays the track: expression as morph targets, head pose as node animation)</h2>'
            f'{viewer_html(root / "track.glb", "viewer", animated=True)}<h2>Per frame</h2>{charts}{video}')
    path = root / REPORT_FILE
    write_text(path, _page("NextFace track", body, viewer=True))
    return path


# -- dataset --------------------------------------------------------------------------------


def dataset_page(rows: Sequence[GalleryRow], facts: Sequence[tuple[str, Any]]) -> str:
    """The gallery page of a dataset run (thumbnails and links relative to its folder)."""
    body = f"<h1>NextFace dataset</h1>{_table(facts)}<h2>Images</h2>{gallery_html(rows)}"
    return _page("NextFace dataset", body)
