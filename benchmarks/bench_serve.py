"""`detic serve` under load: requests/second and p50/p99 latency at several client concurrencies, with and
without dynamic batching, errors and lost requests counted.

    python benchmarks/bench_serve.py [--concurrency 1,4,16] [--max-batch 8,1] [--duration 30]
        [--min-size 800] [--max-size 1333] [--image PICTURE] [--device cpu] [--config YAML --weights PTH]

Each --max-batch value starts its own `detic serve` (1 means no batching) on a free loopback port; for each
concurrency, that many clients post the picture (multipart, as `curl -F image=@...`) back to back for
--duration seconds. Every request sent is answered (a 200 or an error) before the next row: "lost" counts
those that were not. Without --weights it serves the R18 parity model of ../shared (made here with
parity/make_checkpoint.py) and its LVIS vocabulary. On a small CPU use e.g. --min-size 320 --max-size 512.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

SHARED = Path(os.environ.get("DETIC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args, weights: Path, max_batch: int, home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "detic_cli", "serve", "--config", str(args.config), "--weights", str(weights),
           "--vocab", str(args.vocab), "--device", args.device, "--port", str(port), "--max-batch", str(max_batch),
           "--max-wait-ms", str(args.max_wait_ms), f"INPUT.MIN_SIZE_TEST={args.min_size}",
           f"INPUT.MAX_SIZE_TEST={args.max_size}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "DETIC_HOME": str(home)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"detic serve did not start: {' '.join(cmd)}")


def _client(base: str, jpg: bytes, stop: float, out: dict, lock: threading.Lock) -> None:
    with httpx.Client(base_url=base, timeout=300) as client:
        while time.monotonic() < stop:
            start = time.perf_counter()
            with lock:
                out["sent"] += 1
            try:
                ok = client.post("/v1/detect", files={"image": ("picture.jpg", jpg)}).status_code == 200
            except httpx.HTTPError:
                ok = False
            with lock:
                out["latencies" if ok else "errors"].append(time.perf_counter() - start)


def _row(base: str, jpg: bytes, concurrency: int, duration: float) -> dict:
    before = httpx.get(f"{base}/v1/metrics").json()["batcher"]
    out: dict = {"sent": 0, "latencies": [], "errors": []}
    lock, begin = threading.Lock(), time.monotonic()
    threads = [threading.Thread(target=_client, args=(base, jpg, begin + duration, out, lock))
               for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begin
    after = httpx.get(f"{base}/v1/metrics").json()["batcher"]
    lat = np.array(out["latencies"]) * 1000
    batches = after["batches"] - before["batches"]
    return {"concurrency": concurrency, "requests": len(lat), "rps": len(lat) / elapsed,
            "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"), "errors": len(out["errors"]),
            "lost": out["sent"] - len(lat) - len(out["errors"]),
            "mean_batch": len(lat) / batches if batches else float("nan")}


def _weights(args, tmp: Path) -> Path:
    if args.weights:
        return args.weights
    out = tmp / "r18_parity.pth"
    subprocess.run([sys.executable, str(SHARED / "parity/make_checkpoint.py"), "detector", R18, "--out", str(out)],
                   check=True, capture_output=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=SHARED / "detic-reference/configs" / R18)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--vocab", type=Path, default=SHARED / "detic-metadata/lvis_v1_clip_a+cname.npy")
    parser.add_argument("--image", type=Path, default=SHARED / "parity/images/astronaut.jpg")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--max-batch", default="8,1", help="one server per value; 1 = no batching")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per row")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    args = parser.parse_args()
    jpg = args.image.read_bytes()
    print("| max batch | clients | requests | req/s | p50 ms | p99 ms | errors | lost | mean batch |\n"
          "|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        weights = _weights(args, Path(tmp))
        for max_batch in (int(b) for b in args.max_batch.split(",")):
            proc, base = _start(args, weights, max_batch, Path(tmp) / "home")
            try:
                for c in (int(c) for c in args.concurrency.split(",")):
                    r = _row(base, jpg, c, args.duration)
                    print(f"| {max_batch} | {c} | {r['requests']} | {r['rps']:.2f} | {r['p50']:.0f} | {r['p99']:.0f} | "
                          f"{r['errors']} | {r['lost']} | {r['mean_batch']:.2f} |", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)


if __name__ == "__main__":
    main()
