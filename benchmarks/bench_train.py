"""Training throughput. Writes benchmarks/results/train.json (the `cpu` and `gpu` sections are
kept apart: running one mode keeps the other's last result).

CPU (default; `make bench`): the `demo` config's training step (model, AdamW recipe, batch) in
samples/s, fed (a) by the real on-the-fly world loader (when a world exists at --world) and (b)
by synthetic tensors already in memory, plus the loader alone: if (a) is well below (b), the
loader is the bottleneck.

    python -m benchmarks.bench_train [--world data/world] [--steps 8]

GPU (`--gpu`): the `paper` model at 256 samples per GPU, bf16 autocast, torch.compile, on
synthetic tensors; samples/s and model FLOPs utilisation (MFU = FLOPs of one forward+backward,
counted by torch.utils.flop_counter on the uncompiled model, / step time / the GPU's peak dense
bf16 FLOP/s).

    python -m benchmarks.bench_train --gpu [--batch 256] [--steps 20] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, machine
from gair import build_model
from gair.atomic import write_json
from train.config import load_config
from train.data import GAIRDataModule, collate
from train.optim import build_optimizer
from train.synthetic import SyntheticTriples

# Peak dense bf16 tensor-core FLOP/s (no sparsity), by device-name fragment.
PEAK_BF16 = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
}


def synthetic_batch(model_config: dict, batch: int, device) -> dict:
    """A batch from the synthetic dataset, made once and reused (no loader cost)."""
    data = SyntheticTriples("train", model_config, batch, seed=0)
    out = collate([data[i] for i in range(batch)])
    return {k: v.to(device, non_blocking=True) for k, v in out.items()}


def make_step(model, optimizer, scheduler, precision: str, device):
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(batch: dict) -> torch.Tensor:
        with autocast:
            loss = model(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        return loss

    return step


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, batches, steps: int, warmup: int, device) -> list[float]:
    """Seconds per step for `steps` steps after `warmup`; `batches` yields batches."""
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches)
        step(batch)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float], batch: int) -> dict:
    med = statistics.median(times)
    return {
        "steps": len(times),
        "step_s_median": med,
        "steps_per_s": 1.0 / med,
        "samples_per_s": batch / med,
    }


def build(cfg: dict, device, compile_model: bool = False):
    torch.manual_seed(0)
    model = build_model(cfg["model_config"]).to(device).train()
    if compile_model:
        from train.runner import compile_model as compile_parts

        compile_parts(model)
    optimizer, scheduler, _ = build_optimizer(model, cfg["optimizer"], 1, 100, 10_000)
    return model, optimizer, scheduler


def bench_cpu(args) -> dict:
    cfg = load_config("demo", [f"data.path={args.world}", *args.set])
    if cfg["trainer"]["cpu_threads"]:
        torch.set_num_threads(cfg["trainer"]["cpu_threads"])
    batch = cfg["optimizer"]["batch_size"]
    device = torch.device("cpu")
    model, optimizer, scheduler = build(cfg, device)
    fill_queue(model, device)
    step = make_step(model, optimizer, scheduler, "fp32", device)
    fixed = synthetic_batch(cfg["model_config"], batch, device)

    def repeat(b):
        while True:
            yield b

    out = {
        "config": "demo",
        "batch_size": batch,
        "num_workers": cfg["data"]["num_workers"],
        "torch_threads": torch.get_num_threads(),
        "model_params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "synthetic_tensors": summary(
            time_steps(step, repeat(fixed), args.steps, args.warmup, device), batch
        ),
    }
    world = Path(args.world)
    if not (world / "manifest.json").is_file():
        out["world_loader"] = None
        out["world_loader_skipped"] = f"no world at {world} (make world)"
        return out
    dm = GAIRDataModule(cfg)
    loader = dm.train_dataloader()
    it = iter(loader)
    out["world_loader"] = summary(time_steps(step, it, args.steps, args.warmup, device), batch)
    del it
    it = iter(dm.train_dataloader())  # the loader alone: a fresh iterator, first batch untimed
    next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(args.steps):
        n += next(it)["sv"].shape[0]
    out["loader_only_samples_per_s"] = n / (time.perf_counter() - t0)
    out["loader_bound"] = (
        out["world_loader"]["samples_per_s"] < 0.9 * out["synthetic_tensors"]["samples_per_s"]
    )
    return out


def peak_flops(device, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "no GPU"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16.items():
        if key in name:
            return value, f"table entry {key!r} for {name!r}"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


def fill_queue(model, device) -> None:
    queue = model.criterion.queue
    lat = torch.rand(queue.size, device=device) * 140 - 70
    lon = torch.rand(queue.size, device=device) * 360 - 180
    queue.push(torch.stack([lat, lon], -1))


def count_flops(model, batch: dict, precision: str, device) -> int:
    """FLOPs of one forward+backward (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        model(batch)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_gpu(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.device:
        raise SystemExit("--gpu needs a CUDA device (or --device cpu for a dry run)")
    cfg = load_config("paper", [f"optimizer.batch_size={args.batch}", *args.set])
    precision = "bf16" if device.type == "cuda" or args.bf16_on_cpu else "fp32"
    compiled = not args.no_compile
    model, optimizer, scheduler = build(cfg, device, compile_model=False)
    batch = synthetic_batch(cfg["model_config"], args.batch, device)
    fill_queue(model, device)  # steady state: SECL negatives from a full coordinate queue
    flops = count_flops(model, batch, precision, device)  # uncompiled: dispatch-level counts
    if compiled:
        from train.runner import compile_model as compile_parts

        compile_parts(model)
    step = make_step(model, optimizer, scheduler, precision, device)

    def repeat(b):
        while True:
            yield b

    t0 = time.perf_counter()
    times = time_steps(step, repeat(batch), args.steps, args.warmup, device)
    result = {
        "config": "paper",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "batch_size": args.batch,
        "precision": precision,
        "compile": compiled,
        "model_params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "flops_per_step": flops,
        "flops_per_sample": flops / args.batch,
        "wall_s_with_compile": time.perf_counter() - t0,
        **summary(times, args.batch),
    }
    peak, source = peak_flops(device, args.peak_tflops)
    result["peak_flops"], result["peak_source"] = peak, source
    result["mfu"] = flops / result["step_s_median"] / peak if peak else None
    if device.type == "cuda":
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="paper-size bf16 + compile + MFU")
    parser.add_argument("--world", default="data/world", help="world dir for the real loader")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (8 CPU, 20 GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (2 CPU, 5 GPU)")
    parser.add_argument("--batch", type=int, default=256, help="--gpu: samples per GPU")
    parser.add_argument("--peak-tflops", type=float, default=None, help="--gpu: peak bf16 TFLOP/s")
    parser.add_argument("--no-compile", action="store_true", help="--gpu: skip torch.compile")
    parser.add_argument("--device", default=None, help="--gpu: device (e.g. cpu for a dry run)")
    parser.add_argument("--bf16-on-cpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS / "train.json"))
    args = parser.parse_args(argv)
    args.steps = args.steps or (20 if args.gpu else 8)
    args.warmup = args.warmup if args.warmup is not None else (5 if args.gpu else 2)

    section = "gpu" if args.gpu else "cpu"
    result = bench_gpu(args) if args.gpu else bench_cpu(args)
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result["load_avg_1m"] = os.getloadavg()[0]  # other work on the machine skews CPU numbers
    result["machine"] = machine()
    out = Path(args.out)
    try:
        previous = json.loads(out.read_text()) if out.is_file() else {}
    except json.JSONDecodeError:
        previous = {}
    merged = {"benchmark": "train", **{k: v for k, v in previous.items() if k in ("cpu", "gpu")}}
    merged[section] = result
    write_json(out, merged)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
