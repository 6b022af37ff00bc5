"""Model-core throughput on this machine: `tiny` forward+backward samples/s and INR queries/s."""

from __future__ import annotations

import statistics

import torch

from benchmarks.common import timeit, write_result
from gair import build_model
from tests.test_model import toy_batch


def bench_train_step(batch_size: int = 32, repeat: int = 5) -> dict:
    torch.manual_seed(0)
    model = build_model("tiny").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = toy_batch(model, b=batch_size)

    def step():
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    times = timeit(step, repeat)
    med = statistics.median(times)
    return {"batch_size": batch_size, "step_s_median": med, "samples_per_s": batch_size / med}


@torch.no_grad()
def bench_inr(points: int = 4096, repeat: int = 10) -> dict:
    out = {}
    for decoder in ("linear", "mlp"):
        model = build_model({"base": "tiny", "inr": {"decoder": decoder}}).eval()
        tokens = torch.randn(1, model.rs_encoder.width, 8, 8)
        xy = torch.rand(1, points, 2) * 2 - 1
        med = statistics.median(timeit(lambda m=model, t=tokens, q=xy: m.point_query(t, q), repeat))
        out[decoder] = {"points": points, "s_median": med, "queries_per_s": points / med}
    return out


def main() -> None:
    result = {"tiny_train_step": bench_train_step(), "inr_query": bench_inr()}
    print(result)
    write_result("model", result)


if __name__ == "__main__":
    main()
