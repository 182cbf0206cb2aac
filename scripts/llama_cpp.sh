#!/usr/bin/env bash
# llama-cpp-python built from its sdist into the venv given, with llamafile's kernels on
# and batchyard's patches to the llama.cpp it vendors (patches/llama.cpp/: a flash
# attention whose answers never depend on what shares a call; see the patch's comment).
#   scripts/llama_cpp.sh .venv
set -euo pipefail
venv=$1
version=0.3.36
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$venv/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python -d "$work" "llama-cpp-python==$version"
tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
src=$work/llama_cpp_python-$version
# the sdist's vendor/llama.cpp/.git points at a repository that is not there: git apply
# must see a plain directory
rm -f "$src/vendor/llama.cpp/.git"
for patch in "$root"/patches/llama.cpp/*.patch; do
    (cd "$src/vendor/llama.cpp" && GIT_CEILING_DIRECTORIES="$src/vendor" git apply -p1 "$patch")
done
# No cache: a wheel cached from another build (unpatched, other flags) must not be reused.
CMAKE_ARGS="-DGGML_LLAMAFILE=ON" "$venv/bin/pip" install --quiet --no-cache-dir --no-deps \
    --force-reinstall "$src"
