"""A tiny training script for tuning tests: prints the objective per step, as a real one would.

score peaks at lr = 0.3 (and kind "b" adds 0.1); --steps lines are printed, --pause seconds apart.
A kind "slow-bad" prints a poor score slowly, so early stopping has something to stop.
"""
import argparse
import os
import time

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.5)
p.add_argument("--kind", default="a")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--pause", type=float, default=0.0)
a, _ = p.parse_known_args()
bonus = {"a": 0.0, "a2": 0.0, "b": 0.1}.get(a.kind, -1.0)
for step in range(a.steps):
    score = 1.0 - (a.lr - 0.3) ** 2 + bonus - 0.01 * (a.steps - step - 1)
    print(f"epoch {step} score={score:.6f}", flush=True)
    time.sleep(a.pause if a.kind != "slow-bad" else 0.5)
os.makedirs(os.environ["SM_MODEL_DIR"], exist_ok=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as fh:
    fh.write(f"lr={a.lr} kind={a.kind}\n")
