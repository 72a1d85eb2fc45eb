#!/usr/bin/env bash
# The suite's simulator and data packages for a GPU machine that has PyTorch but no network (bench/gpu_check.sh's
# target): downloads their wheels for that machine's Python here, unpacks them into one folder, drops the assets the
# suite never loads (dm_control's dog, locomotion walkers and soccer meshes: 100 MB of 148), and packs it as one
# .tar.xz (about 33 MB for Python 3.12). On the GPU machine:
#
#   mkdir -p /tmp/s && tar -xJf gpu-site.tar.xz -C /tmp/s && export PYTHONPATH=/tmp/s/site MUJOCO_GL=disable
#   PYTHON=python3 bash bench/gpu_check.sh
#
#   bash bench/gpu_site.sh [PYTHON_VERSION (default 3.12)] [OUT (default gpu-site.tar.xz)]
#
# Versions are constraints.txt's. Packages the GPU image usually has already (numpy, scipy, pyyaml, tqdm, lxml,
# absl-py, imageio, packaging, pandas, matplotlib) are not included.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${1:-3.12}"
OUT="$(realpath -m "${2:-gpu-site.tar.xz}")"
PACKAGES=(mujoco dm_control dm-env dm-tree labmaze glfw PyOpenGL ogbench gymnasium Farama-Notifications
          jsonschema jsonschema-specifications referencing rpds-py)
pins=()
for name in "${PACKAGES[@]}"; do
    pin=$(grep -i -E "^${name//-/[-_]}==" constraints.txt || true)
    if [ -z "$pin" ]; then echo "gpu_site.sh: constraints.txt pins no version of $name" >&2; exit 1; fi
    pins+=("$pin")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$work/wheels" "${pins[@]}"
mkdir -p "$work/site"
for wheel in "$work"/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$work/site"; done
rm -rf "$work"/site/dm_control/suite/dog_assets "$work"/site/dm_control/locomotion/walkers/assets \
       "$work"/site/dm_control/locomotion/soccer/assets "$work"/site/dm_control/blender \
       "$work"/site/dm_control/suite/all_domains.png
find "$work/site" -name __pycache__ -prune -exec rm -rf {} +
tar -cJf "$OUT" -C "$work" site
echo "wrote $OUT ($(du -h "$OUT" | cut -f1)): ${pins[*]}"
