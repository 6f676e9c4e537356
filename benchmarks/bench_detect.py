"""Detection speed: the network alone, and `detic detect` end to end (read, resize, network, draw, write).

    python benchmarks/bench_detect.py [--models r18,swinb] [--device auto|cpu|cuda] [--amp off,fp16]
        [--batch 1,4] [--images 16] [--size 640x480] [--weights PTH] [--threshold 0.5]
        [--onnxruntime] [--threads N]

Each model is built from its project config. Without --weights it takes the pseudo-random weights of
../shared/parity/make_checkpoint.py where that exists (they yield many detections, like trained
weights), else its own random initialisation (the network's cost is the same, but few boxes reach the
mask head and the writer: the table shows detections per image). Images are synthetic JPEGs (shapes
on gradients) in a temporary folder. "network" times `Predictor.predict` on prepared inputs; "serial"
runs read, prepare, predict and write one after the other, as a plain loop would; "detect" is
`DetectJob` (the CLI's path, which overlaps reading and writing with the network). Both end-to-end
columns write JSON and pictures.
`--workload parity` times the side-by-side workload of ../shared/reference/speed_pair.py instead (see
parity_workload.py): `--models r18,r50,cxt,swinb`, `--calls 6`, 2 threads unless `--threads`.
On a CPU use small numbers, e.g. `--device cpu --models r18 --images 4 --size 320x240`.
`--onnxruntime` (CPU, amp off) adds the exported graph's time per image beside "network" (see onnx_timing.py),
with `--threads` intra-op threads (default 2; PyTorch is given the same number when --threads is set).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from onnx_timing import onnx_ms_per_image
from rich.console import Console
from rich.table import Table

from detic_cli.config import load_config
from detic_cli.data.image_io import read_image_bgr
from detic_cli.data.sources import Frame, Source, expand_inputs
from detic_cli.engine.detect_job import DetectJob, OutputPlan, frame_result
from detic_cli.engine.model_setup import INFERENCE_AMP, predictor_from_config
from detic_cli.engine.predictor import Predictor
from detic_cli.modeling.builders import build_model
from detic_cli.utils import resolve_device

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MODELS = {"r18": "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml",
          "swinb": "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml",
          "cxt": "Detic_LCOCOI21k_CLIP_CXT21k_640b32_4x_ft4x_max-size.yaml",
          "r50": "Detic_LCOCOI21k_CLIP_R5021k_640b32_4x_ft4x_max-size.yaml",
          "c4": "BoxSup_OVCOCO_CLIP_R50_1x.yaml"}


def write_images(folder: Path, count: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp * rng.uniform(0.3, 1.0, 3), (height, width, 3)).astype(np.uint8).copy()
        for _ in range(8):
            x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(image, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200))), color, -1)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), image)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def serial(predictor: Predictor, sources: list[Source], batch: int, out: Path) -> int:
    """Read, prepare, predict and write one after the other; returns the detections found."""
    job = DetectJob(predictor, [], plan=OutputPlan.make(sources, out / "pictures"), json_path=out / "serial.json")
    found = 0
    for i in range(0, len(sources), batch):
        frames = [Frame(s, 0, read_image_bgr(s.location)) for s in sources[i:i + batch]]
        for frame, instances in zip(frames, predictor.predict(predictor.prepare([f.image for f in frames]))):
            job._emit(frame, frame_result(predictor, frame, instances))
            found += len(instances)
    job.json.close()
    return found


def default_weights(config: str, folder: Path) -> Path | None:
    script = Path(__file__).resolve().parents[2] / "shared/parity/make_checkpoint.py"
    if not script.is_file():
        return None
    out = folder / f"{Path(config).stem}.pth"
    subprocess.run([sys.executable, str(script), "detector", config, "--out", str(out)], check=True,
                   capture_output=True)
    return out


def measure(predictor: Predictor, sources: list[Source], frames: list[np.ndarray], batch: int,
            device: torch.device) -> tuple[float, float, float, int]:
    """(network seconds, serial seconds, DetectJob seconds, detections) over every frame."""
    chunks = [predictor.prepare(frames[i:i + batch]) for i in range(0, len(frames), batch)]
    predictor.predict(chunks[0])  # warm-up
    network = timed(lambda: [predictor.predict(c) for c in chunks], device)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        found = serial(predictor, sources, batch, out)
        plain = timed(lambda: serial(predictor, sources, batch, out), device)
        job = DetectJob(predictor, sources, plan=OutputPlan.make(sources, out / "pictures"),
                        json_path=out / "detect.json", batch_size=batch)
        overlapped = timed(job.run, device)
    return network, plain, overlapped, found


def bench(name: str, args: argparse.Namespace, folder: Path, device: torch.device, table: Table) -> None:
    cfg = load_config(CONFIGS / MODELS[name], [f"MODEL.ROI_HEADS.SCORE_THRESH_TEST={args.threshold}"])
    weights = args.weights or default_weights(MODELS[name], folder.parent) or build_model(cfg).state_dict()
    sources = expand_inputs([str(folder)])
    frames = [read_image_bgr(s.location) for s in sources]
    vocab = np.random.default_rng(0).standard_normal((1203, 512)).astype("float32")
    for amp in args.amp.split(","):
        predictor = predictor_from_config(cfg, weights=weights, device=device, amp=INFERENCE_AMP[amp],
                                          embeddings=vocab)
        ort = "-"
        if args.onnxruntime and device.type == "cpu" and amp == "off":
            ort = onnx_ms_per_image(predictor, frames, vocab, args.threads or 2)
        for batch in (int(b) for b in args.batch.split(",")):
            network, plain, overlapped, found = measure(predictor, sources, frames, batch, device)
            n = len(frames)
            table.add_row(name, str(device), amp, str(batch), str(n), f"{1000 * network / n:.1f}",
                          f"{n / plain:.2f}", f"{n / overlapped:.2f}", f"{found / n:.1f}", ort)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="r18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off")
    parser.add_argument("--batch", default="1")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--workload", choices=["synthetic", "parity"], default="synthetic")
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--onnxruntime", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.workload == "parity":
        from parity_workload import run

        run(args.models.split(","), calls=args.calls, threads=getattr(args, "threads", None) or 2)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    width, height = (int(v) for v in args.size.split("x"))
    table = Table(title="detic detect")
    for column in ("model", "device", "amp", "batch", "images", "network ms/img", "serial img/s", "detect img/s",
                   "dets/img", "onnxruntime ms/img"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "images"
        folder.mkdir()
        write_images(folder, args.images, width, height)
        for name in args.models.split(","):
            bench(name, args, folder, device, table)
    Console().print(table)


if __name__ == "__main__":
    main()
