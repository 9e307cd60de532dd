#!/usr/bin/env bash
# `make demo`'s agent step: a tiny random-weight CWM model served by vLLM on the CPU, and `forager collect`
# running episodes against it. The model is random, so a structured-output regex keeps its replies
# well-formed tool calls; the point is the machinery (sandboxes, tokens, store), not a solved task.
set -euo pipefail
forager=${1:?usage: demo-collect.sh FORAGER_BIN REPO}
repo=${2:?usage: demo-collect.sh FORAGER_BIN REPO}
model_dir=.forager-cache/tiny-cwm
port=${DEMO_VLLM_PORT:-8765}
log=.forager-cache/vllm-demo.log

[ -f "$model_dir/config.json" ] || "$forager" dev tiny-model --out "$model_dir" >/dev/null
echo "demo: starting vLLM (CPU) with the tiny model on port $port (log: $log)"
"$forager" serve --model "$model_dir" --served-name tiny-cwm --port "$port" --max-model-len 8192 \
  --enforce-eager --log "$log" >/dev/null &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "demo: vLLM did not start; see $log" >&2; exit 1; }
  sleep 1
done
"$forager" collect --repo "$repo" --tasks 4 --concurrency 2 --llm "http://127.0.0.1:$port/v1" --model tiny-cwm \
  --max-turns 6 --max-tokens 48 --seed 0 --max-output-chars 4000 \
  --regex '<tool: bash>\n(ls|git status --short|git log --oneline|python -m pytest -q -x)\n</tool>'
