"""A training script whose objective falls with the trial's number, for Hyperband tests.

Trial n (the -NNN- of TRAINING_JOB_NAME, as SageMaker names a tuning job's training jobs)
scores about -n at every step, so each trial is worse than every trial before it, whatever
hyperparameters the sampler chose: a pruner comparing it with an earlier trial of its bracket
must stop it. The first trial runs fast; the rest print a step every --pause seconds.
"""
import argparse
import os
import re
import time

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=8)
p.add_argument("--pause", type=float, default=0.4)
a, _ = p.parse_known_args()
number = int(re.search(r"-(\d{3})-[0-9a-f]{8}$", os.environ["TRAINING_JOB_NAME"]).group(1))
for step in range(a.steps):
    print(f"epoch {step} score={-number + 0.01 * step:.4f}", flush=True)
    if number > 1:
        time.sleep(a.pause)
os.makedirs(os.environ["SM_MODEL_DIR"], exist_ok=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as fh:
    fh.write(f"trial {number}\n")
