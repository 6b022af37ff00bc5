"""The app's prediction heads: trained on the training split, chosen and calibrated on val.

For each task, every GAIR input ("inr", "location", "inr+location") x probe ("linear", "mlp")
is fitted on the evaluation's training points (`--n-train`) and scored on the val split; the best
one is kept: classes by accuracy, numbers by mean absolute error (`HEAD_METRIC`; a user reads
one number per click, and the MSE behind skill lets a few mountain errors outweigh every
plain: on seed 0's val an elevation head chosen by skill put 6% of points above 20 m below
sea level, 26% of those near cities);  a regression head may also be fitted on a transform of its target (`gair.targets`:
asinh scaled to the target's median, against the target itself), likewise chosen on val and
scored in the target's units. Classification heads then get the temperature that minimises the val log-loss, so their
probabilities mean what they say; regression heads get an 80% prediction interval from their val
residuals (`gair.intervals`, split conformal with bins by predicted value). The test split is
not looked at here.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from gair import intervals as conformal
from gair import targets
from gair.evaluation import protocol, stats
from gair.evaluation.probe_eval import MAIN_METRIC, fit
from gair.evaluation.probes import Probe
from gair.heads import Heads

log = logging.getLogger(__name__)

HEAD_INPUTS = ("inr", "location", "inr+location")
HEAD_PROBES = ("linear", "mlp")
# the val metric a head is chosen by, and whether higher is better
HEAD_METRIC = {"classification": ("accuracy", True), "regression": ("mae", False)}


def to_probe(exported: dict, n_out: int) -> Probe:
    """A `Probe` module holding the tensors of a fitted protocol probe's `export()`."""
    t = {
        k: torch.as_tensor(np.asarray(v), dtype=torch.float32)
        for k, v in exported.items()
        if k != "kind"
    }
    if exported["kind"] == "linear":
        probe = Probe(t["x_mean"].numel(), n_out, "linear")
        probe.net.weight.data.copy_(t["weight"].reshape(n_out, -1))
        probe.net.bias.data.copy_(t["bias"].reshape(n_out))
    else:
        probe = Probe(t["x_mean"].numel(), n_out, "mlp", hidden=int(t["w1"].shape[0]))
        probe.net[0].weight.data.copy_(t["w1"])
        probe.net[0].bias.data.copy_(t["b1"])
        probe.net[2].weight.data.copy_(t["w2"].reshape(n_out, -1))
        probe.net[2].bias.data.copy_(t["b2"].reshape(n_out))
    probe.x_mean.copy_(t["x_mean"].reshape(-1))
    probe.x_std.copy_(t["x_std"].reshape(-1))
    probe.y_mean.copy_(t["y_mean"].reshape(-1).expand(probe.y_mean.shape))
    probe.y_std.copy_(t["y_std"].reshape(-1).expand(probe.y_std.shape))
    return probe.eval()


def select_heads(tasks, labels: dict, feats: dict, blocks: dict, seed: int = 0, fitted=None):
    """-> (Heads, record): record lists every candidate's val score and the choice per task.

    labels[split][task] = (y, ok); feats[("gair", input)][split] = x; blocks["train"] = CV groups;
    fitted: {(task, "gair", input, probe): model} already fitted on the same points (reused).
    """
    fitted = fitted or {}
    chosen, probes, kinds, inputs, temps, record, bands = {}, {}, {}, {}, {}, {}, {}
    target_of = {}
    for task in tasks:
        cls = task.kind == "classification"
        n_classes = len(task.classes) if cls else 0
        y_tr, ok_tr = labels["train"][task.name]
        y_val, ok_val = labels["val"][task.name]
        train_mean = float(np.mean(y_tr[ok_tr])) if not cls else 0.0
        metric, higher = HEAD_METRIC[task.kind]
        candidates = []
        transforms = [targets.IDENTITY] + ([] if cls else [targets.asinh_for(y_tr[ok_tr])])
        for inp in HEAD_INPUTS:
            x = feats[("gair", inp)]
            for probe in HEAD_PROBES:
                for target in transforms:
                    model = fitted.get((task.name, "gair", inp, probe))
                    if model is None or target != targets.IDENTITY:
                        model = fit(
                            probe, task, x["train"][ok_tr], targets.forward(target, y_tr[ok_tr]),
                            blocks["train"][ok_tr], x["val"][ok_val],
                            targets.forward(target, y_val[ok_val]), n_classes, seed,
                        )  # fmt: skip
                    pred = model.predict(x["val"][ok_val])
                    if cls:
                        score = stats.classification_metrics(y_val[ok_val], pred, n_classes)
                    else:
                        pred = targets.inverse(target, pred)
                        score = stats.regression_metrics(y_val[ok_val], pred, train_mean)
                    scores = {"val_" + m: score[m] for m in (metric, MAIN_METRIC[task.kind])}
                    score = score[metric]
                    candidates.append(
                        {"input": inp, "probe": probe}
                        | scores
                        | ({} if cls else {"target": target})
                    )
                    log.info(
                        "head %s: %s/%s (%s) val %s %.4f", task.name, inp, probe, target, metric,
                        score,
                    )  # fmt: skip
                    best = chosen.get(task.name)
                    if best is None or (score > best[0] if higher else score < best[0]):
                        chosen[task.name] = (score, inp, probe, model, target, candidates[-1])
        _, inp, probe, model, target, picked = chosen[task.name]
        temperature = 1.0
        x_val = feats[("gair", inp)]["val"][ok_val]
        if cls:
            temperature = protocol.temperature_scale(model.logits(x_val), y_val[ok_val])
        else:
            limits = (float(np.min(y_tr[ok_tr])), float(np.max(y_tr[ok_tr])))
            pred_val = targets.inverse(target, model.predict(x_val))
            bands[task.name] = conformal.fit(pred_val, y_val[ok_val], limits=limits)
        probes[task.name] = to_probe(model.export(), n_classes or 1)
        kinds[task.name], inputs[task.name], temps[task.name] = probe, inp, float(temperature)
        target_of[task.name] = target
        record[task.name] = {
            "chosen": picked,
            "rule": f"{'highest' if higher else 'lowest'} val {metric}",
            "temperature": float(temperature),
            "candidates": candidates,
        } | ({"interval": bands[task.name].to_dict()} if task.name in bands else {})
    heads = Heads(list(tasks), probes, kinds, inputs, temps, bands, target_of)
    return heads, record
