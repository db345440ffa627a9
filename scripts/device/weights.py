"""Move a model folder (fp32 safetensors) to a machine that can only be reached by small
uploads, losslessly: the weights' bytes are split into four byte planes (sign/exponent bytes
compress well, low mantissa bytes do not), each plane deflated, everything packed into one
tar and cut into parts of a chosen size. `unpack` joins the parts, rebuilds the folder and
checks the SHA-256 of model.safetensors, so the far side computes with the same weights.

    python scripts/device/weights.py pack ~/.cache/tasksafe/models/aligned-f4e970bb4694 .xfer --part-mb 60
    python scripts/device/weights.py unpack '/tmp/xfer/part-*' /tmp/models/aligned-f4e970bb4694
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import struct
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

KEEP = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
        "alignment.json")


def _deflate(plane: bytes) -> bytes:
    return zlib.compress(plane, 6)


def pack(model_dir: Path, out_dir: Path, part_mb: float, first_mb: float | None) -> None:
    raw = (model_dir / "model.safetensors").read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    body = np.frombuffer(raw, dtype=np.uint8, offset=8 + header_len)
    if dtypes != {"F32"} or body.size % 4:
        raise SystemExit(f"{model_dir}: expected fp32 tensors only, found {sorted(dtypes)}")
    planes = [body.reshape(-1, 4)[:, i].tobytes() for i in range(4)]
    with ProcessPoolExecutor(2) as pool:
        deflated = list(pool.map(_deflate, planes))
    index = {"sha256": hashlib.sha256(raw).hexdigest(), "header_bytes": 8 + header_len, "size": len(raw),
             "planes": [len(d) for d in deflated]}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        members = [("index.json", json.dumps(index).encode()), ("head.bin", raw[:8 + header_len])]
        members += [(f"plane{i}.z", d) for i, d in enumerate(deflated)]
        members += [(name, (model_dir / name).read_bytes()) for name in KEEP if (model_dir / name).exists()]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes, start = [], 0
    while start < len(blob):
        size = int((first_mb if not sizes and first_mb else part_mb) * 1e6)
        (out_dir / f"part-{len(sizes):02d}").write_bytes(blob[start:start + size])
        sizes.append(min(size, len(blob) - start))
        start += size
    print(json.dumps({"sha256": index["sha256"], "bytes": len(blob), "ratio": round(len(blob) / len(raw), 3),
                      "parts": sizes}))


def unpack(pattern: str, model_dir: Path) -> None:
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise SystemExit(f"{pattern}: no parts match")
    blob = b"".join(Path(p).read_bytes() for p in paths)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        index = json.loads(files["index.json"])
        planes = [np.frombuffer(zlib.decompress(files[f"plane{i}.z"]), dtype=np.uint8) for i in range(4)]
        body = np.stack(planes, axis=1).reshape(-1)
    except (tarfile.TarError, zlib.error, KeyError, ValueError) as err:
        raise SystemExit(f"{pattern}: {len(paths)} parts do not make a whole packed model ({err}): "
                         "a part is missing or damaged") from None
    raw = files["head.bin"] + body.tobytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != index["sha256"]:
        raise SystemExit(f"rebuilt weights differ: sha256 {digest} != {index['sha256']}")
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.safetensors").write_bytes(raw)
    for name in KEEP:
        if name in files:
            (model_dir / name).write_bytes(files[name])
    print(f"{model_dir}: model.safetensors sha256 {digest} (matches)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("model_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--part-mb", type=float, default=60)
    p.add_argument("--first-mb", type=float, default=None, help="size of the first part (it may share an upload)")
    u = sub.add_parser("unpack")
    u.add_argument("pattern")
    u.add_argument("model_dir", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.model_dir, args.out_dir, args.part_mb, args.first_mb)
    else:
        unpack(args.pattern, args.model_dir)


if __name__ == "__main__":
    main()
