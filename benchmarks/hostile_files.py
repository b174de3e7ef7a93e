"""Hostile-file campaign: generated mutations of a real .pqz (manifest fields set to hostile
values and re-sealed with valid checksums; random bit flips), fed to every reader; counts the
files refused with a PQCError, the ones read (with finite tensors), and the mishandled ones
(any other exception, or non-finite tensors). Seeded, so two runs try the same mutations.

    python benchmarks/hostile_files.py 1500
"""

import collections
import copy
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "codec"))
import numpy as np
import torch
from codec_support import join, split

from pqcompress import CompressionConfig, Compressor, codec
from pqcompress.codec import portable
from pqcompress.errors import PQCError
from pqcompress.models import build_model

WORK = Path(tempfile.mkdtemp(prefix="pqc-hostile-"))
GOOD = WORK / "good.pqz"
torch.manual_seed(0)
model = build_model("cnn5", num_classes=10, input_shape=(3, 16, 16), width=0.25)
comp = Compressor(model, CompressionConfig(alpha=0.6, bits=8, form="uniform"))
comp.apply()
codec.save(
    model,
    str(GOOD),
    comp,
    model_name="cnn5",
    model_args={"width": 0.25},
    num_classes=10,
    input_shape=(3, 16, 16),
    onnx="none",
)
data = GOOD.read_bytes()
manifest, payload = split(data)
rng = random.Random(1)
VALUES = [
    None,
    True,
    -1,
    0,
    1,
    2**31,
    2**63,
    2**70,
    1e38,
    1e300,
    float("nan"),
    "x",
    [],
    {},
    [1, 2],
    {"a": 1},
    -0.5,
    3.5,
    "float64",
    "int32",
    [2**40, 2**40],
]


def mutate_manifest():
    m = copy.deepcopy(manifest)
    target = rng.choice(["tensor", "model", "section", "top"])
    if target == "tensor":
        e = rng.choice(m["tensors"])
        k = rng.choice(list(e))
        e[k] = rng.choice(VALUES)
    elif target == "section":
        e = rng.choice(m["tensors"])
        s = rng.choice(e["sections"])
        k = rng.choice(list(s))
        s[k] = rng.choice(VALUES)
    elif target == "model":
        k = rng.choice(["name", "num_classes", "input_shape", "model_args"])
        m["model"][k] = rng.choice(VALUES)
    else:
        k = rng.choice(list(m))
        m[k] = rng.choice(VALUES)
    try:
        return join(m, payload)
    except ValueError:
        return None


def mutate_bytes():
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


readers = {
    "read": lambda p: codec.read(p),
    "load": lambda p: codec.load(p),
    "inspect": lambda p: codec.inspect(p, baseline=False),
    "portable": lambda p: portable.read_arrays(p),
}
tried = 0
outcome = collections.Counter()
bad = collections.Counter()
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1500):
    blob = mutate_manifest() if i % 2 == 0 else mutate_bytes()
    if blob is None:
        continue
    path = str(WORK / "m.pqz")
    Path(path).write_bytes(blob)
    for name, fn in readers.items():
        tried += 1
        try:
            out = fn(path)
            tensors = (
                out[1]
                if isinstance(out, tuple)
                else (out.state_dict() if hasattr(out, "state_dict") else {})
            )
            for t in tensors.values():
                a = t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    bad["nonfinite:" + name] += 1
                    break
            outcome["ok"] += 1
        except PQCError:
            outcome["refused"] += 1
        except Exception as exc:
            bad[f"{name}:{type(exc).__name__}"] += 1
print("tried", tried, dict(outcome), "mishandled", sum(bad.values()), dict(bad))
