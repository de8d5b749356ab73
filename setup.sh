#!/usr/bin/env bash
# Set up NextFace in ./.venv: the core, the CLI (with the extras of `track` and `fit-dataset`),
# all six first-party plugins and the FLAME example.
#   ./setup.sh          the whole tool: every command of the README runs afterwards
#   ./setup.sh --test   the same plus the test tools (pytest, hypothesis, scikit-image, ruff, build)
#   ./setup.sh --help   this text
# Environment: PYTHON (default: the first of python3, python3.12, python3.11, python3.10 that is
# supported), VENV (default .venv), TORCH_SPEC (default torch==2.13.0; installed first so no
# other package picks a torch build).
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
test_tools=0
for arg in "$@"; do
  case "$arg" in
    --test) test_tools=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup: error: unknown option $arg" >&2; echo "fix: run ./setup.sh --help for the options" >&2; exit 2 ;;
  esac
done

# Supported interpreters: mediapipe 0.10.21 (the only release whose wheel ships the face-mesh
# models) has wheels for Python 3.9-3.12 only, and the core needs 3.10 or newer.
MIN_MINOR=10
MAX_MINOR=12
supported() { "$1" -c "import sys; sys.exit(not ((3, $MIN_MINOR) <= sys.version_info[:2] <= (3, $MAX_MINOR)))" 2>/dev/null; }
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "not runnable"; }
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ -x "$VENV/bin/python" ]; then
  PYTHON="$VENV/bin/python"
  supported "$PYTHON" || {
    echo "setup: error: $VENV uses Python $(version_of "$PYTHON"); NextFace supports 3.$MIN_MINOR-3.$MAX_MINOR" >&2
    echo "fix: rm -rf $VENV and rerun ./setup.sh (set PYTHON=python3.12, 3.11 or 3.10)" >&2
    exit 2
  }
elif [ -n "${PYTHON:-}" ]; then
  supported "$PYTHON" || {
    echo "setup: error: PYTHON=$PYTHON is Python $(version_of "$PYTHON"); NextFace supports 3.$MIN_MINOR-3.$MAX_MINOR" >&2
    echo "fix: set PYTHON to a python3.12, python3.11 or python3.10 (mediapipe 0.10.21 has no wheel for 3.13)" >&2
    exit 2
  }
else
  for candidate in python3 python3.12 python3.11 python3.10; do
    if command -v "$candidate" >/dev/null 2>&1 && supported "$candidate"; then PYTHON=$candidate; break; fi
  done
  [ -n "${PYTHON:-}" ] || {
    echo "setup: error: no supported Python found (python3 is $(version_of python3))" >&2
    echo "fix: install Python 3.12, 3.11 or 3.10 (e.g. apt-get install python3.11-venv, or pyenv install 3.12) and rerun, or set PYTHON" >&2
    exit 2
  }
fi

# Mitsuba's CPU (LLVM) backend needs a shared libLLVM; Debian's libllvm19 works (DESIGN.md §6).
if ! ls /usr/lib/x86_64-linux-gnu/libLLVM.so.19* >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19 >/dev/null) \
    || echo "setup: warning: could not install libllvm19; the mitsuba renderer will not run on the CPU" >&2
fi

# The report's 3D viewer: @google/model-viewer (Apache-2.0; it bundles three.js, MIT, and lit, BSD-3-Clause),
# one file from the npm registry, vendored into the package data with its licence (README, Outputs).
MODEL_VIEWER=4.4.0 MODEL_VIEWER_SHA256=18b2e711035aa4705ee281530a55dc2338ff05eed3d70ae16d54105282a75ed5
vendor=nextface_core/report/vendor
if ! echo "$MODEL_VIEWER_SHA256  $vendor/model-viewer.min.js" | sha256sum -c --status 2>/dev/null; then
  if command -v npm >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "@google/model-viewer@$MODEL_VIEWER" >/dev/null \
      && tar -xzf "google-model-viewer-$MODEL_VIEWER.tgz" package/dist/model-viewer.min.js package/LICENSE) \
      && echo "$MODEL_VIEWER_SHA256  $tmp/package/dist/model-viewer.min.js" | sha256sum -c --status \
      && cp "$tmp/package/dist/model-viewer.min.js" "$vendor/" && cp "$tmp/package/LICENSE" "$vendor/LICENSE.model-viewer" \
      || echo "setup: could not fetch @google/model-viewer $MODEL_VIEWER; reports will have no 3D view" >&2
    rm -rf "$tmp"
  else
    echo "setup: npm not found; reports will have no 3D view (install Node.js and rerun)" >&2
  fi
fi

# The vertex renderer's compiled kernels are built at install with a C++17 compiler.
if ! command -v c++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null) \
    || echo "setup: could not install g++; the vertex renderer will use its PyTorch path" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install "$TORCH_SPEC"
extras="ray,video"
[ "$test_tools" = 1 ] && extras="$extras,test"
pip install -e ".[$extras]" \
  -e plugins/model_basel \
  -e plugins/render_vertex \
  -e plugins/render_mitsuba \
  -e plugins/render_redner \
  -e plugins/landmarks_mediapipe \
  -e plugins/landmarks_fan \
  -e examples/model_flame
if [ "$test_tools" = 1 ]; then
  # The real clients the export tests drive: Debian's chromium and blender (its glTF importer needs numpy),
  # the Khronos glTF validator (npm).
  if { ! command -v chromium >/dev/null || ! command -v blender >/dev/null; } && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium blender python3-numpy >/dev/null) \
      || echo "setup: could not install chromium and blender; their tests will be skipped" >&2
  fi
  command -v npm >/dev/null && (cd tests/exports && npm ci --silent --no-audit --no-fund) \
    || echo "setup: could not install the glTF validator (npm); its tests will be skipped" >&2
fi
echo "setup: NextFace installed in $VENV ($("$VENV/bin/nextface" --version))"
