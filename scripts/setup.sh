#!/usr/bin/env bash
# Set up everything equal needs on a fresh machine: a virtualenv in .venv with the
# pinned CPU build of torch, equal with every extra (local LLM, server, report, alignment,
# Hugging Face datasets, sample, bench, Ray, dev), Debian's python3-doc and python-sympy-doc (text of the sample and benchmark
# corpora), chromium and chromium-driver (the report's browser test and screenshot) and
# the assembled local model.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's exit status is kept (pipefail); only the noise about missing local mirrors is dropped.
quiet_pip() { pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
quiet_pip --upgrade pip
# torch first, pinned: the CPU wheel lies on local disk; an open range would pull a CUDA build.
quiet_pip torch==2.13.0
# llama-cpp-python compiles from source the first time (about 4-6 minutes on 2 cores).
python -c "import llama_cpp" 2>/dev/null \
  || echo "installing equal; compiling llama-cpp-python from source (about 4-6 minutes on 2 cores, silent)..."
quiet_pip -e ".[local,server,report,align,hf,sample,bench,ray,dev]"
python -c "import equal, llama_cpp, torch, faiss, ot, ray, matplotlib, jinja2, accelerate, datasets" >/dev/null
apt_packages=()
[ -d /usr/share/doc/python3.11/html/_sources ] || apt_packages+=(python3-doc)
[ -d /usr/share/doc/python-sympy-doc/html/_sources ] || apt_packages+=(python-sympy-doc)
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${apt_packages[@]}") >/dev/null 2>&1 \
      || echo "warning: could not install ${apt_packages[*]}: 'equal make-sample' needs python3-doc," \
              "'equal make-bench' python-sympy-doc, the report's browser test chromium and chromium-driver" >&2
  else
    echo "warning: install Debian's ${apt_packages[*]} (sudo apt-get install ${apt_packages[*]})" >&2
  fi
fi
equal prepare-model >/dev/null
echo "equal is set up in .venv"
