"""Training speed and memory: the R18 and Swin-B box-supervised recipes on synthetic batches.

    python benchmarks/bench_train.py [--models r18,swinb] [--device auto|cpu|cuda] [--amp config|fp16|bf16|off]
        [--batch N] [--size S] [--warmup 3] [--iters 10]

Each model is built from its project config with random weights and trained with the real loop step
(`Trainer.run_step`: losses, backward, clipping, optimizer, schedule) on random square images of the
recipe's input size (INPUT.TRAIN_SIZE: 640 for R18, 896 for Swin-B) with random boxes and masks. The
batch per device defaults to the recipe's SOLVER.IMS_PER_BATCH / 8 (the original trained on 8 GPUs).
The federated loss is off (it needs the LVIS frequency file); everything else follows the config.
Prints one table: iterations/s, images/s and peak memory (CUDA: max allocated; CPU: the process's
peak resident set). On a CPU use small numbers, e.g. `--device cpu --size 320 --batch 1 --iters 2`.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from detic_cli.config import load_config
from detic_cli.engine.build import amp_mode, build_lr_scheduler, build_optimizer, train_settings
from detic_cli.engine.trainer import Trainer
from detic_cli.modeling.builders import build_model
from detic_cli.structures import Boxes, Instances
from detic_cli.utils import resolve_device

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MODELS = {"r18": "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml", "swinb": "BoxSup-C2_LCOCO_CLIP_SwinB_896b32_4x.yaml"}
ORIGINAL_GPUS = 8


def synthetic_batch(batch: int, size: int, num_classes: int, masks: bool, gen: torch.Generator) -> list[dict[str, Any]]:
    """`batch` images of size x size with 1-20 random boxes (XYXY, pixels) and box-shaped masks each."""
    out = []
    for i in range(batch):
        n = int(torch.randint(1, 21, (1,), generator=gen))
        xy = torch.rand(n, 2, generator=gen) * size * 0.7
        wh = torch.rand(n, 2, generator=gen) * size * 0.3 + 8
        boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], dim=1)
        fields: dict[str, Any] = {"gt_boxes": Boxes(boxes),
                                  "gt_classes": torch.randint(0, num_classes, (n,), generator=gen)}
        if masks:
            grid = torch.arange(size)
            fields["gt_masks"] = ((grid[None, None, :] >= boxes[:, None, None, 0]) &
                                  (grid[None, None, :] <= boxes[:, None, None, 2]) &
                                  (grid[None, :, None] >= boxes[:, None, None, 1]) &
                                  (grid[None, :, None] <= boxes[:, None, None, 3]))
        out.append({"image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=gen),
                    "height": size, "width": size, "instances": Instances((size, size), **fields),
                    "ann_type": "box", "pos_category_ids": fields["gt_classes"].unique().tolist(),
                    "dataset_source": 0, "image_id": i, "file_name": f"synthetic_{i}"})
    return out


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    cfg = load_config(CONFIGS / MODELS[name], ["MODEL.ROI_BOX_HEAD.USE_FED_LOSS=False", "MODEL.WEIGHTS="])
    size = args.size or cfg.INPUT.TRAIN_SIZE
    batch = args.batch or max(1, cfg.SOLVER.IMS_PER_BATCH // ORIGINAL_GPUS)
    amp, _ = amp_mode(cfg, None if args.amp == "config" else args.amp, device.type)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    model.set_vocabulary(torch.randn(classes, cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM))
    optimizer = build_optimizer(cfg, model)
    trainer = Trainer(model=model, optimizer=optimizer, scheduler=build_lr_scheduler(cfg, optimizer),
                      make_data=lambda start, seed: iter(()), max_iter=cfg.SOLVER.MAX_ITER, output_dir=Path("."),
                      device=device, amp=amp, clip=train_settings(cfg).clip, tensorboard=False)
    model.train()
    gen = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(batch, size, classes, bool(cfg.MODEL.MASK_ON), gen) for _ in range(2)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.warmup):
        trainer.run_step(model, batches[i % 2], i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(args.iters):
        trainer.run_step(model, batches[i % 2], i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / max(args.iters, 1)
    result = {"model": name, "size": size, "batch": batch, "amp": amp or "fp32", "it_s": 1 / seconds,
              "img_s": batch / seconds, "mem": peak_memory_mb(device)}
    del trainer, optimizer, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="r18,swinb", help="comma-separated: r18, swinb")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="config", choices=["config", "fp16", "bf16", "off"])
    parser.add_argument("--batch", type=int, default=0, help="images per step (default: IMS_PER_BATCH / 8)")
    parser.add_argument("--size", type=int, default=0, help="input side (default: INPUT.TRAIN_SIZE)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    device = resolve_device(args.device)
    table = Table(title=f"training step, {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}")
    for column in ("model", "input", "batch", "precision", "it/s", "images/s", "peak MB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in args.models.split(","):
        r = bench(name.strip(), args, device)
        table.add_row(r["model"], f"{r['size']}x{r['size']}", str(r["batch"]), r["amp"], f"{r['it_s']:.3f}",
                      f"{r['img_s']:.2f}", f"{r['mem']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
