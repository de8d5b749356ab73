"""Landmark files (JSON, CSV) and the core's ``file`` detector: round trips and every error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nextface_core.config import load_config
from nextface_core.errors import InputError, UsageError
from nextface_core.landmark_files import FileDetector, read_landmark_file, read_landmarks, write_landmarks
from nextface_core.landmarks import LandmarkDetector, LandmarkSet
from nextface_core.plugins import PluginRegistry

WRITE_TOLERANCE = 5e-4  # points are written to 1/1000 px, confidences to 1e-4


def make_sets() -> dict[str, LandmarkSet]:
    g = torch.Generator().manual_seed(3)
    names = ["dir/a.png", "b.jpg", "c.png"]
    found = torch.tensor([True, False, True])
    ibug = LandmarkSet("ibug68", torch.rand(3, 68, 2, generator=g) * 500, torch.rand(3, 68, generator=g), found, names)
    mp = LandmarkSet("mediapipe478", torch.rand(3, 478, 2, generator=g) * 500, torch.ones(3, 478), found, names)
    for s in (ibug, mp):
        s.points[~found] = 0
        s.confidence[~found] = 0
    return {"ibug68": ibug, "mediapipe478": mp}


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    sets = make_sets()
    path = write_landmarks(tmp_path / f"marks{suffix}", sets, sizes={"dir/a.png": (640, 480)})
    back = read_landmark_file(path)
    assert back.sizes == {"dir/a.png": (640, 480)}
    for schema, orig in sets.items():
        got = back.sets[schema]
        # CSV leaves out images without a face; JSON keeps them with found=False
        keep = [i for i, n in enumerate(orig.names) if n in got.names]
        assert got.names == [orig.names[i] for i in keep]
        assert got.found.tolist() == orig.found[keep].tolist()
        assert torch.allclose(got.points, orig.points[keep], atol=WRITE_TOLERANCE)
        assert torch.allclose(got.confidence, orig.confidence[keep], atol=WRITE_TOLERANCE)


def test_file_detector_matches_names_rescales_and_marks_missing(tmp_path: Path) -> None:
    sets = make_sets()
    path = write_landmarks(tmp_path / "m.json", sets, sizes={"dir/a.png": (640, 480)})
    det = FileDetector(path)
    half = np.zeros((240, 320, 3), np.uint8)  # dir/a.png at half size
    out = det.detect([half, half, half], ["a.png", "c.png", "unknown.png"])
    ibug = out["ibug68"]
    assert ibug.found.tolist() == [True, True, False]
    assert torch.allclose(ibug.points[0], sets["ibug68"].points[0] * 0.5, atol=WRITE_TOLERANCE)
    assert torch.allclose(ibug.points[1], sets["ibug68"].points[2], atol=WRITE_TOLERANCE)  # no size recorded: as is
    assert ibug.points[2].abs().max() == 0 and ibug.confidence[2].max() == 0
    assert set(out) == {"ibug68", "mediapipe478"}
    with pytest.raises(InputError, match="were made on a 640×480 image, but the image is 300×300"):
        det.detect([np.zeros((300, 300, 3), np.uint8)], ["dir/a.png"])


def test_file_detector_finds_the_names_fit_gives_images(tmp_path: Path) -> None:
    """``nextface fit photos/`` names ``photos/c.png`` ``c``; ``nextface landmarks`` wrote ``c.png``."""
    sets = make_sets()
    det = FileDetector(write_landmarks(tmp_path / "m.json", sets))
    image = np.zeros((8, 8, 3), np.uint8)
    ibug = det.detect([image] * 3, ["c", "dir/a", "a"])["ibug68"]
    assert ibug.found.tolist() == [True, True, True]
    assert torch.allclose(ibug.points[0], sets["ibug68"].points[2], atol=WRITE_TOLERANCE)
    assert torch.allclose(ibug.points[2], sets["ibug68"].points[0], atol=WRITE_TOLERANCE)
    two = {k: LandmarkSet(k, v.points[[0, 2]], v.confidence[[0, 2]], v.found[[0, 2]], ["x.png", "x.jpg"]) for k, v in sets.items()}
    ambiguous = FileDetector(write_landmarks(tmp_path / "x.json", two))
    assert ambiguous.detect([image], ["x"])["ibug68"].found.tolist() == [False]  # which x? neither
    assert ambiguous.detect([image], ["x.jpg"])["ibug68"].found.tolist() == [True]


def test_file_detector_from_config_and_registry(tmp_path: Path) -> None:
    path = write_landmarks(tmp_path / "m.csv", make_sets())
    config = load_config(overrides={"landmarks.file": str(path)})
    det = PluginRegistry(entry_points=False).create("detector", "file", config)
    assert isinstance(det, FileDetector) and isinstance(det, LandmarkDetector) and det.name == "file"
    with pytest.raises(UsageError, match="needs a landmark file"):
        FileDetector.from_config(load_config())


def write_json(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    return path


def good_entry(n: int = 68) -> dict:
    return {"points": [[1.0, 2.0]] * n}


@pytest.mark.parametrize(
    "doc, message",
    [
        ([], "top level: must be an object"),
        ({"images": []}, "images: is missing or not an object"),
        ({"format": "other", "images": {}}, "format: is 'other'"),
        ({"version": 9, "images": {}}, "version: is 9"),
        ({"images": {"a.png": 3}}, 'images."a.png": must be an object'),
        ({"images": {"a.png": {"landmark": {}}}}, 'images."a.png".landmark: unknown key'),
        ({"images": {"a.png": {"landmarks": {"ibug68": good_entry(67)}}}}, "has 67 points, but schema 'ibug68' has 68"),
        (
            {"images": {"a.png": {"landmarks": {"ibug68": {"points": [[1, 2]] * 10 + [[1, "x"]] + [[1, 2]] * 57}}}}},
            r'images."a.png".landmarks.ibug68.points\[10\]: must be \[x, y\]',
        ),
        (
            {"images": {"a.png": {"landmarks": {"ibug68": {**good_entry(), "confidence": [0.5] * 67 + [1.5]}}}}},
            r"ibug68.confidence\[67\]: must be a number in \[0, 1\]",
        ),
        (
            {"images": {"a.png": {"landmarks": {"ibug68": {**good_entry(), "confidence": [1.0] * 3}}}}},
            "ibug68.confidence: must be a list of 68 numbers",
        ),
        ({"images": {"a.png": {"width": 10, "landmarks": {"x": good_entry(3)}}}}, 'images."a.png".height: must be a positive integer'),
        ({"images": {"a.png": {"landmarks": {"x": {"points": []}}}}}, "x.points: has no points"),
        (
            {"images": {"a.png": {"landmarks": {"x": good_entry(3)}}, "b.png": {"landmarks": {"x": good_entry(4)}}}},
            "image 'b.png', schema 'x': has 4 points but image 'a.png' has 3",
        ),
        ({"images": {"a.png": {"landmarks": {}}}}, "holds no landmarks"),
    ],
)
def test_json_errors_name_the_key(tmp_path: Path, doc: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_landmarks(write_json(tmp_path, doc))


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"images": {\n  "a.png": {\n    "landmarks": {,}\n}}}')
    with pytest.raises(InputError, match="not valid JSON: .* at line 3"):
        read_landmarks(path)


def csv_file(tmp_path: Path, rows: list[str], header: str = "image,schema,index,x,y,confidence") -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def points_rows(n: int, name: str = "a.png", schema: str = "ibug68") -> list[str]:
    return [f"{name},{schema},{i},{i}.5,2,1" for i in range(n)]


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (points_rows(68), "image,schema,x,y", "line 1: the header lacks column.s. index"),
        (points_rows(3) + ["a.png,ibug68,3,abc,2,1"], None, "line 5: x = 'abc' is not a number"),
        (points_rows(3) + ["a.png,ibug68,3.5,1,2,1"], None, "line 5: index = '3.5' is not an integer"),
        (points_rows(3) + ["a.png,ibug68,2,1,2,1"], None, "line 5: duplicate index 2"),
        (points_rows(3) + ["a.png,ibug68,68,1,2,1"], None, r"line 5: index 68 is out of range for schema 'ibug68' \(0..67\)"),
        (points_rows(3) + ["a.png,ibug68,3,1,2,7"], None, r"line 5: confidence = 7 is outside \[0, 1\]"),
        (points_rows(3) + ["a.png,ibug68,3,1,2,1,9"], None, "line 5: has more columns"),
        (points_rows(3) + ["a.png,ibug68,3"], None, "line 5: has fewer columns"),
        (points_rows(3) + ["a.png,ibug68,3,nan,2,1"], None, "line 5: x = 'nan' is not finite"),
        (points_rows(60), None, r"line 2: image 'a.png', schema 'ibug68' lacks index\(es\) 60, 61, 62, 63, 64 ..."),
        ([], None, "holds no landmarks"),
    ],
)
def test_csv_errors_name_the_line(tmp_path: Path, rows: list[str], header: str | None, message: str) -> None:
    path = csv_file(tmp_path, rows) if header is None else csv_file(tmp_path, rows, header)
    with pytest.raises(InputError, match=message):
        read_landmarks(path)


def test_csv_without_confidence_defaults_to_one(tmp_path: Path) -> None:
    rows = [f"a.png,mine,{i},{i},{2 * i}" for i in range(5)]
    sets = read_landmarks(csv_file(tmp_path, rows, header="image,schema,index,x,y"))
    assert sets["mine"].points.shape == (1, 5, 2) and sets["mine"].points[0, 4].tolist() == [4.0, 8.0]
    assert sets["mine"].confidence.min() == 1.0


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_landmarks(tmp_path / "none.json")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(InputError, match=r"must end in .json or .csv"):
        read_landmarks(tmp_path / "m.txt")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match="cannot be read"):
        read_landmarks(tmp_path / "bin.csv")
    with pytest.raises(UsageError, match="must end in .json or .csv"):
        write_landmarks(tmp_path / "out.txt", make_sets())


def test_a_registered_schema_record_sets_the_count_the_files_are_checked_against(tmp_path: Path) -> None:
    from nextface_core import landmark_schemas
    from nextface_core.landmark_schemas import LandmarkSchema, register_schema

    five = LandmarkSchema("test_five", 5, (0, 4), (10, 20, 30))
    rows = ["image,schema,index,x,y", *[f"a.png,test_five,{i},{i}.5,1.5" for i in range(4)]]
    (tmp_path / "four.csv").write_text("\n".join(rows) + "\n")
    read_landmark_file(tmp_path / "four.csv")  # unregistered: any consistent count
    register_schema(five)
    register_schema(five)  # the same record again: no-op
    try:
        with pytest.raises(InputError, match=r"lacks index\(es\) 4 \(needs 0..4\)"):
            read_landmark_file(tmp_path / "four.csv")
        assert landmark_schemas.eye_corners("test_five") == (0, 4) and landmark_schemas.colour("test_five") == (10, 20, 30)
        with pytest.raises(ValueError, match="already registered"):
            register_schema(LandmarkSchema("test_five", 6, None, (0, 0, 0)))
    finally:
        landmark_schemas._SCHEMAS.pop("test_five")  # the table is process-wide: leave it as found
