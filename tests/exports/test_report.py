"""report.html: self-contained pages of a fit, a shared-identity fit, a track and a dataset;
``nextface report OUT`` rebuilding them; and real headless Chromium opening a page from the
disk: the face drawn in the 3D view, the view changing when orbited, no console error, no
request leaving the page."""

from __future__ import annotations

import base64
import io
import re
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

import nextface_cli.main as cli
from nextface_core.dataset.gallery import write_dataset_report
from nextface_core.dataset.manifest import DONE, FAILED, ImageRecord, write_manifest
from nextface_core.dataset.storage import Location
from nextface_core.report import viewer_script

REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nextface", *args])
    monkeypatch.setitem(cli.state, "debug", False)
    with pytest.raises(SystemExit) as info:
        cli.main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def _embedded_glb(page: str) -> bytes:
    match = re.search(r'<model-viewer[^>]* src="data:model/gltf-binary;base64,([^"]+)"', page)
    assert match, "no inlined model in the page"
    return base64.b64decode(match.group(1))


def test_fit_pages_are_self_contained(fit_out) -> None:
    result, out = fit_out
    assert viewer_script() is not None, "setup.sh vendors the viewer; run it"
    for name in result.names:
        page = (out / name / "report.html").read_text()
        assert not REMOTE.search(page), "the page refers to the network"
        assert _embedded_glb(page) == (out / name / "mesh.glb").read_bytes()
        images = re.findall(r'<img src="([^"]*)"', page)
        assert len(images) >= 9 and all(src.startswith("data:image/png;base64,") for src in images)
        for caption in ("input", "overlay", "re-render", "diffuse albedo", "specular albedo", "roughness",
                        "environment map", "detected (green), each joined to the model point", "stage 2 loss"):
            assert f"<figcaption>{caption}" in page, caption
        assert "jaw-contour points in orange" in page
        assert f"{result.metrics()[result.names.index(name)]['landmark_error_px']:.4g}" in page
        assert "customElements.define" in page  # the viewer is inlined, not fetched
    overview = (out / "report.html").read_text()
    assert overview.count("<tr><td><a href=") == len(result.names)
    assert 'href="face1/report.html"' in overview and "data-sort" in overview and not REMOTE.search(overview)


def test_shared_identity_and_track_pages(shared_out, track_out) -> None:
    result, out = shared_out
    page = (out / "face1" / "report.html").read_text()
    assert _embedded_glb(page) == (out / "face1" / "mesh.glb").read_bytes()
    assert base64.b64encode((out / "identity" / "diffuse.png").read_bytes()).decode() in page  # the identity's map
    track, folder = track_out
    page = (folder / "report.html").read_text()
    assert _embedded_glb(page) == (folder / "track.glb").read_bytes() and " autoplay" in page
    assert page.count("<polyline") == 7 and not REMOTE.search(page)
    assert f"<td class=num>{track.frame_count}</td>" in page


def test_nextface_report_rebuilds_the_pages_of_an_output_folder(fit_out, tmp_path, monkeypatch, capsys) -> None:
    result, out = fit_out
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {p: p.read_bytes() for p in copy.rglob("report.html")}
    for p in before:
        p.unlink()
    code, stdout, stderr = _run(monkeypatch, capsys, "report", str(copy))
    assert code == 0, stderr
    assert f"wrote {copy / 'report.html'} and {len(result.names)} more pages" in stdout
    assert {p: p.read_bytes() for p in copy.rglob("report.html")} == before
    code, _, stderr = _run(monkeypatch, capsys, "report", str(tmp_path / "copy" / "face0"))
    assert code != 0 and "error:" in stderr and "is not a NextFace output folder" in stderr and "fix:" in stderr


def test_dataset_gallery_links_every_finished_image(tmp_path) -> None:
    out = Location.of(tmp_path)
    records = [
        ImageRecord("alice/001.png", "a.png", task="alice/001.png", status=DONE, metrics={"landmark_error_px": 2.5, "psnr_db": 30.0}),
        ImageRecord("bob/002.png", "b.png", task="bob/002.png", status=DONE, metrics={"landmark_error_px": 1.5, "psnr_db": None}),
        ImageRecord("carol/003.png", "c.png", task="carol/003.png", status=FAILED, error="no face"),
    ]
    write_manifest(out, records, "jsonl")
    write_dataset_report(out)
    page = (tmp_path / "report.html").read_text()
    assert 'href="fits/alice__001.png/001.png/report.html"' in page and "bob/002.png" in page and "carol" not in page
    assert "<th>failed</th><td class=num>1</td>" in page and 'data-value="2.5"' in page


def _face_pixels(png: bytes) -> tuple[np.ndarray, float]:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float) / 255.0
    face = np.abs(image - 1.0).max(-1) > 0.1  # the viewer's background is white
    return image, float(face.mean())


_LOADED = """new Promise((resolve) => {
  const v = document.querySelector('model-viewer');
  const done = () => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => resolve(true), 500)));
  if (v.loaded) done(); else { v.addEventListener('load', done); v.addEventListener('error', (e) => resolve(String(e.detail))); }
  setTimeout(() => resolve('timeout'), 90000);
})"""
_SETTLE = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => r(true), 1500))))"


def test_chromium_draws_the_face_and_orbits_it(fit_out, chromium) -> None:
    result, out = fit_out
    chromium.open((out / "face0" / "report.html").as_uri())
    assert chromium.evaluate("customElements.get('model-viewer') !== undefined")
    chromium.evaluate("document.querySelector('model-viewer').scrollIntoView()")
    assert chromium.evaluate(_LOADED) is True
    box = chromium.evaluate("(() => { const r = document.querySelector('model-viewer').getBoundingClientRect();"
                            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
    first, covered = _face_pixels(chromium.screenshot(box))
    assert 0.03 < covered < 0.9, f"{covered:.1%} of the viewer shows the face"
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    chromium.send("Input.dispatchMouseEvent", type="mousePressed", x=centre[0], y=centre[1], button="left", clickCount=1)
    for step in range(1, 11):
        chromium.send("Input.dispatchMouseEvent", type="mouseMoved", x=centre[0] + 18 * step, y=centre[1], button="left")
    chromium.send("Input.dispatchMouseEvent", type="mouseReleased", x=centre[0] + 180, y=centre[1], button="left", clickCount=1)
    chromium.evaluate(_SETTLE)
    dragged, covered_dragged = _face_pixels(chromium.screenshot(box))
    assert np.abs(dragged - first).max(-1).__gt__(0.1).mean() > 0.01, "the drag did not orbit the view"
    chromium.evaluate("(() => { const v = document.querySelector('model-viewer');"
                      " v.cameraOrbit = '180deg 90deg auto'; v.jumpCameraToGoal(); })()")
    chromium.evaluate(_SETTLE)
    behind, _ = _face_pixels(chromium.screenshot(box))
    assert np.abs(behind - dragged).max(-1).__gt__(0.1).mean() > 0.01, "camera-orbit did not move the view"
    assert covered_dragged > 0.03
    assert chromium.console_errors() == []
    remote = [u for u in chromium.requested_urls() if not u.startswith(("file:", "data:", "blob:"))]
    assert remote == [], remote


def test_chromium_sorts_the_gallery(fit_out, chromium) -> None:
    result, out = fit_out
    chromium.open((out / "report.html").as_uri())
    names = "[...document.querySelectorAll('table.gallery tbody tr')].map(r => r.cells[1].textContent)"
    psnr = [m["psnr_db"] for m in result.metrics()]
    chromium.evaluate("document.querySelectorAll('th[data-sort]')[2].click()")
    assert chromium.evaluate(names) == [n for _, n in sorted(zip(psnr, result.names))]
    chromium.evaluate("document.querySelectorAll('th[data-sort]')[2].click()")
    assert chromium.evaluate(names) == [n for _, n in sorted(zip(psnr, result.names), reverse=True)]
    assert chromium.console_errors() == []


def test_without_the_vendored_viewer_the_page_says_so_and_shows_the_rest(fit_out, monkeypatch) -> None:
    import nextface_core.report as report

    result, out = fit_out
    monkeypatch.setattr(report, "viewer_script", lambda: None)
    page = report.image_page(out, "face0", {"stages": []})
    assert "<model-viewer" not in page and "3D view unavailable" in page and "run ./setup.sh" in page
    assert "<figcaption>diffuse albedo" in page


def test_unknown_mesh_units_are_a_usage_error(tmp_path, monkeypatch, capsys) -> None:
    code, _, stderr = _run(monkeypatch, capsys, "fit", str(tmp_path / "photo.png"), "--mesh-units", "cm")
    assert code == 2 and "output.mesh_units = 'cm' is not allowed" in stderr and "fix: use one of ['m', 'mm']" in stderr
