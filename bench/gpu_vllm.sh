#!/usr/bin/env bash
# For a GPU machine: a random-init youtu-2b (the paper's 2B MLA geometry) served by vLLM, `agentkit synth` at
# 256 episodes in flight against it; prints trajectories/s and agentkit's share of the episodes' wall time
# (the time an episode spends anywhere but waiting for the model: tools, verification, the loop itself).
#
#   VLLM_PYTHON=/path/to/venv/bin/python bash bench/gpu_vllm.sh      # a venv with `pip install vllm` (CUDA)
#
# Knobs: TASKS (1024), CONCURRENCY (256), ENV (math), TOKENIZER (a 128k-vocabulary tokenizer directory; without
# it the model takes the shipped tiny tokenizer's vocabulary), LAYERS (32), PORT (8000).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VLLM_PYTHON:?set VLLM_PYTHON to the python of a venv with vllm installed (pip install vllm)}"
TASKS=${TASKS:-1024}
CONCURRENCY=${CONCURRENCY:-256}
ENV=${ENV:-math}
LAYERS=${LAYERS:-32}
PORT=${PORT:-8000}
WORK=$(mktemp -d)
PY=.venv/bin/python

if [ -n "${TOKENIZER:-}" ]; then
  vocab=("model.tokenizer=$TOKENIZER")
else
  vocab=("model.arch.vocab_size=$($PY -c 'from agentkit.models import load_tokenizer; print(len(load_tokenizer()))')")
fi
$PY -m agentkit.cli serve engine=vllm model=youtu-2b "${vocab[@]}" "model.arch.num_hidden_layers=$LAYERS" \
  vllm.python="$VLLM_PYTHON" vllm.device=gpu vllm.dtype=bfloat16 max_model_len=8192 \
  vllm.max_num_seqs="$CONCURRENCY" port="$PORT" port_file="$WORK/port" > "$WORK/serve.log" 2>&1 &
serve=$!
trap 'kill -TERM $serve 2>/dev/null; wait $serve 2>/dev/null || true' EXIT
started=$(date +%s)
until [ -s "$WORK/port" ]; do
  kill -0 $serve 2>/dev/null || { tail -50 "$WORK/serve.log"; echo "gpu_vllm: vLLM exited" >&2; exit 1; }
  sleep 2
done
echo "vllm_startup_seconds: $(( $(date +%s) - started ))"

t0=$(date +%s.%N)
$PY -m agentkit.cli synth env="$ENV" env.tasks.n="$TASKS" model.base_url="http://127.0.0.1:$PORT/v1" \
  model.name=youtu-2b concurrency="$CONCURRENCY" model.max_concurrency="$CONCURRENCY" sampling.max_tokens=512 \
  out="$WORK/synth" report.progress=false report.plots=false > "$WORK/synth.log" 2>&1
t1=$(date +%s.%N)
$PY - "$WORK/synth/raw/rollouts.jsonl" "$t0" "$t1" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
wall = float(sys.argv[3]) - float(sys.argv[2])
model = sum(r["stats"]["seconds"]["model"] for r in rows)
total = sum(r["stats"]["seconds"]["total"] for r in rows)
print(f"trajectories: {len(rows)}")
print(f"wall_seconds: {wall:.1f}")
print(f"trajectories_per_second: {len(rows) / wall:.2f}")
print(f"agentkit_share_of_episode_time: {(total - model) / total:.4f}")
print(f"completion_tokens_per_second: {sum(r['stats']['completion_tokens'] for r in rows) / wall:.0f}")
EOF
