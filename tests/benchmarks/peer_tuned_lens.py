"""tuned-lens 0.2.0's own full view, timed: run by bench_session.py inside tuned-lens's environment.

    python -m venv /tmp/tl && /tmp/tl/bin/pip install torch==2.13.0 tuned-lens==0.2.0 "plotly<6"
    python tests/benchmarks/bench_session.py --peer-python /tmp/tl/bin/python

Reads a JSON job on stdin: the model config and seed (the same weights bench_session builds: same
config, same seed, same torch), the token ids, the thread count. It builds the model once, then for
each line "time" on stdin builds a PredictionTrajectory with tuned-lens's logit lens and computes
entropy (plot_lens's default view: "seconds"), then the other four statistics the widget shows at
once (cross-entropy, forward KL, max probability, rank: "all_seconds"), and answers with both.
bench_session interleaves these with its own full grids, so their ratio holds while the machine's
load changes. Imports only torch, transformers and tuned_lens.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM
from tuned_lens.nn.lenses import LogitLens
from tuned_lens.plotting import PredictionTrajectory


def main() -> None:
    job = json.loads(sys.stdin.readline())
    torch.set_num_threads(job["threads"])
    config = AutoConfig.for_model(**job["config"])
    torch.manual_seed(job["seed"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    lens = LogitLens.from_model(model)
    ids = job["ids"]
    targets = [*ids[1:], ids[-1]]
    print(json.dumps({"ready": True, "checksum": float(sum(p.double().sum() for p in model.parameters()))}), flush=True)
    for line in sys.stdin:
        if line.strip() != "time":
            break
        start = time.perf_counter()
        trajectory = PredictionTrajectory.from_lens_and_model(lens, model, ids, targets=targets)
        trajectory.entropy()
        one = time.perf_counter() - start  # what plot_lens computes for its default view
        for statistic in ("cross_entropy", "forward_kl", "max_probability", "rank"):
            getattr(trajectory, statistic)()
        print(json.dumps({"seconds": one, "all_seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
