"""A user's training function for +strategy=xla: plain PyTorch plus the strategy's device, sharding, step end."""

import torch
import torch.nn.functional as F


def main(ctx, steps: int = 200, lr: float = 0.1):
    import torch_xla  # here, not at the top: the driver imports this module to check it and needs no XLA runtime

    strategy = ctx.strategy
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1).to(strategy.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x = torch.linspace(0, 1, 8).unsqueeze(1)  # 8 samples: 4 on each of 2 devices
    y = 2 * x + 1
    for step in range(1, steps + 1):
        xb, yb = strategy.prepare_batch(x, y)
        optimizer.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        strategy.optimizer_step(optimizer)
        strategy.step_end()
        if step % 50 == 0:
            ctx.log({"loss": loss.item()}, step)
    ctx.save_checkpoint({"model": model.state_dict()}, steps)
    return {
        "weight": model.weight.item(),
        "bias": model.bias.item(),
        "device_type": xb.device.type,
        "mesh_devices": strategy.num_devices,
        "input_sharding": torch_xla._XLAC._get_xla_sharding_spec(xb),  # e.g. {devices=[2,1]0,1}: split on dim 0
    }
