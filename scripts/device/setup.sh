# Source on the GPU machine from the repo root (the lead's device runs; not used by CI):
#   . scripts/device/setup.sh
# Installs the carried diffusers wheel, puts flashgen on the path, rebuilds MiniLM.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 scripts/device/unpack_minilm.py .carry/minilm /tmp/minilm >/dev/null || return 1
export FLASHGEN_MINILM_DIR=/tmp/minilm
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import sys, torch, transformers, diffusers, accelerate; print(sys.version.split()[0], torch.__version__, transformers.__version__, diffusers.__version__, accelerate.__version__, torch.cuda.is_available())"
