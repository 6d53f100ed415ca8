"""Peak memory of reading an encrypted export, against the export's size.

::

    .venv/bin/python benchmarks/decrypt_memory.py --sizes 50,500 [--out FILE]

For each size (in MB) it writes a plain export of about that size under /tmp (synthetic
rows in Sentry's format, streamed to disk: ``relocate.generate`` when it is available,
else, or with ``--generator synthetic``, ``sentry.option`` and ``sentry.useremail`` rows),
encrypts it with ``encrypt_export``
and a local RSA key, then, each in a fresh subprocess, measures:

* ``decrypt``: ``open_plaintext`` on the tarball, streamed into ``iter_export``;
* ``plain``: ``iter_export`` on the plain file, for reference.

Each child counts the rows and reports its wall time and its peak RSS, read from
``VmHWM`` in ``/proc/self/status`` (``ru_maxrss`` of a child would include what it
inherited). ``baseline`` is VmHWM after the imports, before the first byte is read.

It prints a table and a JSON report (also written to ``--out``), and exits 1 if the peak
RSS of the largest size exceeds that of the smallest by more than ``--max-growth-mb``
(memory must not grow with the export). Temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

MB = 1024 * 1024
_TS = "2023-06-22T22:59:55.488Z"
_WRITE_BUFFER = 1 << 20


# --- Measurement (child process) ----------------------------------------------------------


def vm_hwm_kb() -> int:
    """Peak resident set size of this process so far, in kB (``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(mode: str, src: Path, key: Path | None) -> dict[str, Any]:
    """Reads ``src`` in this process; returns rows, seconds and peak RSS."""
    from relocate.io.crypto import DecryptionSpec, open_plaintext
    from relocate.io.export_reader import iter_export

    spec = DecryptionSpec(private_key_pem=key.read_bytes()) if key is not None else None
    baseline = vm_hwm_kb()
    start = time.perf_counter()
    rows = 0
    with src.open("rb") as source:
        if mode == "decrypt":
            assert spec is not None
            with open_plaintext(source, spec) as plaintext:
                for _ in iter_export(plaintext):
                    rows += 1
        else:
            for _ in iter_export(source):
                rows += 1
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "baseline_rss_mb": round(baseline / 1024, 1),
        "peak_rss_mb": round(vm_hwm_kb() / 1024, 1),
    }


def run_child(mode: str, src: Path, key: Path | None) -> dict[str, Any]:
    """``measure`` in a fresh interpreter, so that its VmHWM is its own."""
    command = [sys.executable, __file__, "--child", mode, "--src", str(src)]
    if key is not None:
        command += ["--key", str(key)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} of {src} failed:\n{done.stderr}")
    return json.loads(done.stdout)


# --- Inputs --------------------------------------------------------------------------------


def _synthetic_rows() -> Iterator[str]:
    """Endless ``sentry.option`` / ``sentry.useremail`` rows, as Sentry exports them."""
    n = 0
    while True:
        n += 1
        yield json.dumps(
            {
                "model": "sentry.option",
                "pk": n,
                "fields": {
                    "key": f"bench.option.{n}",
                    "last_updated": _TS,
                    "last_updated_by": "unknown",
                    "value": json.dumps({"n": n, "text": "x" * (n % 97)}),
                },
            }
        )
        yield json.dumps(
            {
                "model": "sentry.useremail",
                "pk": n,
                "fields": {
                    "user": n,
                    "email": f"user{n}@example.com",
                    "validation_hash": f"{n:032x}",
                    "date_hash_added": _TS,
                    "is_verified": n % 3 == 0,
                },
            }
        )


def _write_synthetic(out: BinaryIO, size: int) -> None:
    out.write(b"[")
    written = 1
    for i, row in enumerate(_synthetic_rows()):
        data = (row if i == 0 else ",\n" + row).encode()
        out.write(data)
        written += len(data)
        if written >= size:
            break
    out.write(b"]\n")


def _generated_bytes_per_row() -> float:
    """Bytes per row of ``relocate.generate``'s output, from a small sample."""
    import io

    from relocate.generate import generate

    sample = io.BytesIO()
    result = generate(sample, 20_000)
    return len(sample.getvalue()) / result.rows


def write_plain_export(path: Path, size_mb: int, generator: str = "auto") -> str:
    """Writes a plain export of about ``size_mb`` MB; returns the generator used.

    ``generator`` is ``auto`` (``relocate.generate`` if importable), ``generate`` or
    ``synthetic``.
    """
    size = size_mb * MB
    generate = None
    if generator != "synthetic":
        try:
            from relocate.generate import generate
        except ImportError:
            if generator == "generate":
                raise
    with path.open("wb", buffering=_WRITE_BUFFER) as out:
        if generate is not None:
            generate(out, max(1, round(size / _generated_bytes_per_row())))
            return "relocate.generate"
        _write_synthetic(out, size)
        return "synthetic"


def make_key(directory: Path) -> tuple[Path, bytes]:
    """A fresh RSA key: the private PEM file, and the public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "private.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def encrypt(plain: Path, tarball: Path, public_pem: bytes) -> float:
    """Encrypts ``plain`` into ``tarball``; returns the seconds it took."""
    from relocate.io.crypto import encrypt_export

    start = time.perf_counter()
    with plain.open("rb") as src, tarball.open("wb", buffering=_WRITE_BUFFER) as dest:
        encrypt_export(src, dest, public_key_pem=public_pem)
    return time.perf_counter() - start


# --- Report --------------------------------------------------------------------------------


def bench_size(
    size_mb: int, work: Path, private: Path, public_pem: bytes, generator: str = "auto"
) -> dict[str, Any]:
    """Builds, encrypts and reads one export; removes its files afterwards."""
    plain = work / f"export-{size_mb}mb.json"
    tarball = work / f"export-{size_mb}mb.tar"
    try:
        start = time.perf_counter()
        generator = write_plain_export(plain, size_mb, generator)
        generate_seconds = time.perf_counter() - start
        encrypt_seconds = encrypt(plain, tarball, public_pem)
        decrypt = run_child("decrypt", tarball, private)
        plain_read = run_child("plain", plain, None)
        if decrypt["rows"] != plain_read["rows"]:
            raise RuntimeError(f"row counts differ: {decrypt['rows']} != {plain_read['rows']}")
        return {
            "size_mb": size_mb,
            "generator": generator,
            "plain_bytes": plain.stat().st_size,
            "tarball_bytes": tarball.stat().st_size,
            "rows": plain_read["rows"],
            "generate_seconds": round(generate_seconds, 2),
            "encrypt_seconds": round(encrypt_seconds, 2),
            "decrypt": decrypt,
            "plain": plain_read,
        }
    finally:
        plain.unlink(missing_ok=True)
        tarball.unlink(missing_ok=True)


def print_table(results: list[dict[str, Any]]) -> None:
    header = ("size", "rows", "read", "seconds", "rows/s", "baseline MB", "peak RSS MB")
    lines = [header]
    for result in results:
        for mode in ("decrypt", "plain"):
            m = result[mode]
            lines.append(
                (
                    f"{result['plain_bytes'] / MB:.0f} MB",
                    f"{m['rows']:,}",
                    mode,
                    f"{m['seconds']:.1f}",
                    f"{m['rows_per_s']:,}",
                    f"{m['baseline_rss_mb']:.1f}",
                    f"{m['peak_rss_mb']:.1f}",
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,500", help="export sizes in MB (default 50,500)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--generator",
        choices=("auto", "generate", "synthetic"),
        default="auto",
        help="relocate.generate's realistic export, or option/useremail rows (default: "
        "relocate.generate when it is importable)",
    )
    parser.add_argument("--tmp-dir", default="/tmp", help="where the exports go (default /tmp)")
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=16.0,
        help="allowed peak-RSS growth from the smallest to the largest size (default 16)",
    )
    parser.add_argument("--child", choices=("decrypt", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure(args.child, args.src, args.key)))
        return 0

    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    work = Path(tempfile.mkdtemp(prefix="relocate-decrypt-bench-", dir=args.tmp_dir))
    try:
        private, public_pem = make_key(work)
        results = []
        for size_mb in sizes:
            print(f"{size_mb} MB: generating, encrypting, reading...", file=sys.stderr)
            results.append(bench_size(size_mb, work, private, public_pem, args.generator))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    growth = {
        mode: round(results[-1][mode]["peak_rss_mb"] - results[0][mode]["peak_rss_mb"], 1)
        for mode in ("decrypt", "plain")
    }
    report = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "sizes": results,
        "peak_rss_growth_mb": growth,
        "max_growth_mb": args.max_growth_mb,
        "flat": all(g <= args.max_growth_mb for g in growth.values()),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(json.dumps(report, indent=2))
    return 0 if report["flat"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
