#!/usr/bin/env bash
# The GPU benchmarks, prepared to run in one go on a machine with an NVIDIA GPU and no Rust
# (the `device` tool of our workplace): the bench binary and the Vulkan loader travel with it.
#   Here:  cargo build --release --bench gpu && mkdir -p .devbin && cp "$(ls -t target/release/deps/gpu-* | grep -v '\.d$' | head -1)" .devbin/gpu && strip .devbin/gpu
#          (and .gl/ holding libvulkan1's .deb, see ../.library/device/README.md)
#   There: benches/gpu-device.sh     (writes JSON results under $OUT)
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
done
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-none}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv
nproc
out=${OUT:-/tmp/out}
mkdir -p "$out"
B=.devbin/gpu
D=/tmp/wb
# 1.1B-parameter Llama shape (TinyLlama: hidden 2048, 22 layers, MLP 5632, vocab 32000, 4 KV heads), BF16.
$B make $D/llama1b 2048 22 5632 32000 256 bf16 | tee "$out/make-1b.json"
$B copy 4 | tee "$out/copy.json"
$B stats $D/llama1b 5 | tee "$out/stats-1b.json"
# SmolLM2-135M's shapes (hidden 576, 30 layers, MLP 1536, vocab 49152, 3 KV heads of 64, tied), F32.
$B make $D/smollm2 576 30 1536 49152 192 f32 tied | tee "$out/make-smollm2.json"
$B spectra $D/smollm2 | tee "$out/spectra-smollm2.json"
echo done
