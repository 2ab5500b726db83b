"""A user's own training function, as a user would write one: plain PyTorch plus the scaletrain context."""

import torch
import torch.distributed as dist


def main(ctx, steps: int = 20, lr: float = 0.1, mark_steps: bool = False):
    torch.manual_seed(0)
    weight = torch.zeros(1, requires_grad=True)
    start = 0
    state = ctx.load_checkpoint()
    if state is not None:
        weight.data.copy_(state["weight"])
        start = state["step"]
    for step in range(start + 1, steps + 1):
        loss = (weight - 3.0).pow(2).sum()
        loss.backward()
        dist.all_reduce(weight.grad)
        weight.grad /= ctx.world_size
        with torch.no_grad():
            weight -= lr * weight.grad
        weight.grad.zero_()
        ctx.log({"loss": loss.item()}, step)
        if mark_steps:
            ctx.step_done(samples=ctx.world_size, model=[weight])  # one sample per rank per step; what it trains
    ctx.save_checkpoint({"weight": weight.detach()}, steps)
    return {"weight": weight.item(), "rank_seen": ctx.rank, "world_size_seen": ctx.world_size}
