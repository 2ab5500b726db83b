"""An unmodified torchrun-style script that all-reduces in a loop until told to stop, with a short collective
timeout (its first argument, in seconds), as a user's own training script would."""

import datetime
import sys
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=float(sys.argv[1])))
t = torch.ones(1)
for step in range(100000):
    dist.all_reduce(t)
    if step % 100 == 0:
        print(f"step {step}", flush=True)
    time.sleep(0.001)
dist.destroy_process_group()
