#!/usr/bin/env bash
# Set up NextFace in ./.venv: the core, the CLI, all six first-party plugins and the FLAME example.
#   ./setup.sh          runtime only
#   ./setup.sh --test   plus the test dependencies
# Environment: PYTHON (default python3), VENV (default .venv),
# TORCH_SPEC (default torch==2.13.0; installed first so no other package picks a torch build).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
extras=""
[ "${1:-}" = "--test" ] && extras="[test,ray,video]"

# Mitsuba's CPU (LLVM) backend needs a shared libLLVM; Debian's libllvm19 works (DESIGN.md §6).
if ! ls /usr/lib/x86_64-linux-gnu/libLLVM.so.19* >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19 >/dev/null) \
    || echo "setup: could not install libllvm19; the mitsuba renderer will not run on the CPU" >&2
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

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install "$TORCH_SPEC"
pip install -e ".$extras" \
  -e plugins/model_basel \
  -e plugins/render_vertex \
  -e plugins/render_mitsuba \
  -e plugins/render_redner \
  -e plugins/landmarks_mediapipe \
  -e plugins/landmarks_fan \
  -e examples/model_flame
if [ "${1:-}" = "--test" ]; then
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
