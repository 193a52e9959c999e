"""UI publish cost: a first publish of a 200-file UI vs a one-file change (prints figures).

    uv run python -m bench.publish [--files 200] [--rounds 3]

Generates a built UI like a bundler writes it (content-hashed chunks, styles and
images under ``assets/``, a few un-hashed public files, an ``index.html`` naming
every chunk), publishes it to a bucket of a moto server started here (reached over
HTTP like S3), then changes one chunk (new content, new hashed name, so the page
changes too) and publishes again, then publishes the same build once more. S3
requests are counted by type with botocore's ``before-call.s3.*`` hook. Each
scenario runs ``--rounds`` times on fresh buckets; times are medians. The first
publish is the baseline of the ratios.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamaws.builder.publish import PublishResult, PublishTarget, aws_clients, publish
from llamaws.local.engine import start_local_engine

__all__ = ["main"]

UI = "/deployments/bench/ui"
PUBLIC = ["robots.txt", "favicon.svg", "manifest.webmanifest", "humans.txt", "config.json",
          "sitemap.xml", "LICENSE.txt", "og-image.png"]  # fmt: skip


def _hashed(stem: str, content: bytes, ext: str) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).decode()[:8]
    return f"assets/{stem}-{digest}.{ext}"


def _chunk(rng: random.Random, n: int, version: int = 0) -> bytes:
    body = "".join(
        f"export const v{n}_{i} = {rng.random()!r};\n" for i in range(rng.randint(40, 400))
    )
    return f"// chunk {n} v{version}\n{body}".encode()


def generate(root: Path, files: int, seed: int = 7) -> Path:
    """A built UI of ``files`` files in ``root``; returns the directory."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "assets").mkdir()
    public = PUBLIC[: max(0, min(len(PUBLIC), files - 2))]
    for name in public:
        (root / name).write_bytes(f"{name}\n".encode() * rng.randint(1, 50))
    hashed = files - 1 - len(public)
    images, styles = hashed // 8, hashed // 10
    names: list[str] = []
    for n in range(hashed):
        if n < images:
            content, ext = rng.randbytes(rng.randint(4_000, 60_000)), "webp"
        elif n < images + styles:
            content, ext = f".c{n} {{ color: #{n:06x}; }}\n".encode() * rng.randint(20, 200), "css"
        else:
            content, ext = _chunk(rng, n), "js"
        name = _hashed(f"part{n}", content, ext)
        (root / name).write_bytes(content)
        names.append(name)
    _write_index(root, names)
    return root


def _write_index(root: Path, names: list[str]) -> None:
    tags = [f'<script type="module" src="{UI}/{n}"></script>' for n in names if n.endswith(".js")]
    tags += [f'<link rel="stylesheet" href="{UI}/{n}">' for n in names if n.endswith(".css")]
    (root / "index.html").write_text(
        "<!doctype html><html><head>\n" + "\n".join(tags) + "\n</head></html>\n"
    )


def change_one_chunk(root: Path) -> None:
    """Edit one JS chunk: it gets a new hashed name, so index.html changes too."""
    old = sorted((root / "assets").glob("part*.js"))[0]
    content = old.read_bytes() + b"export const edited = true;\n"
    old.unlink()
    stem = old.name.rsplit("-", 1)[0]
    (root / _hashed(stem, content, "js")).write_bytes(content)
    names = sorted(p.relative_to(root).as_posix() for p in (root / "assets").iterdir())
    _write_index(root, names)


@dataclass
class Run:
    result: PublishResult
    seconds: float
    requests: Counter[str]


def _timed(build: Path, target: PublishTarget, s3: Any) -> Run:
    counter: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counter[model.name] += 1

    s3.meta.events.register("before-call.s3.*", count)
    try:
        start = time.perf_counter()
        result = publish(build, target, s3=s3)
        return Run(result, time.perf_counter() - start, counter)
    finally:
        s3.meta.events.unregister("before-call.s3.*", count)


def _line(label: str, run: Run, seconds: float, base: Run | None, base_seconds: float) -> str:
    out = run.result.to_json()
    figures = (f"{label:<22} objects {out['uploaded']:>4}  bytes {out['bytes_uploaded']:>10,}  "
               f"time {seconds * 1000:>7.1f} ms  requests "
               + ", ".join(f"{k} {v}" for k, v in sorted(run.requests.items())))  # fmt: skip
    if base is not None:
        first = base.result.to_json()
        figures += (f"  | vs first: objects {out['uploaded'] / first['uploaded']:.3f}, "
                    f"bytes {out['bytes_uploaded'] / first['bytes_uploaded']:.4f}, "
                    f"time {seconds / base_seconds:.3f}")  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        os.environ.setdefault(name, value)

    engine = start_local_engine()
    work = Path(tempfile.mkdtemp(prefix="llamaws-bench-publish-"))
    try:
        s3, _ = aws_clients(engine.endpoint)
        runs: dict[str, list[Run]] = {"first": [], "change": [], "same": []}
        for round_ in range(args.rounds):
            build = generate(work / f"ui{round_}", args.files)
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            s3.create_bucket(Bucket=bucket)
            target = PublishTarget(bucket, UI.strip("/"), UI)
            runs["first"].append(_timed(build, target, s3))
            change_one_chunk(build)
            runs["change"].append(_timed(build, target, s3))
            runs["same"].append(_timed(build, target, s3))
        medians = {k: statistics.median(r.seconds for r in v) for k, v in runs.items()}
        total = runs["first"][0].result.plan.bytes_to_upload
        print(f"UI: {args.files} files, {total:,} bytes; moto server over HTTP; "
              f"median of {args.rounds} rounds")  # fmt: skip
        first = runs["first"][0]
        print(_line("first publish", first, medians["first"], None, 0))
        print(_line("one-file change", runs["change"][0], medians["change"], first,
                    medians["first"]))  # fmt: skip
        print(_line("same build again", runs["same"][0], medians["same"], first,
                    medians["first"]))  # fmt: skip
        objects = runs["change"][0].result.to_json()["uploaded"]
        print(
            f"goal: <= 2 objects for the one-file change: {objects} "
            f"({'met' if objects <= 2 else 'NOT met'})"
        )
    finally:
        engine.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
