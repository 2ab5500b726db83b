"""A PyTorch model's training FLOPs per sample, counted by PyTorch's FlopCounterMode, and the device's peak.

The count runs one forward and backward pass on the meta device (``torch.func.functional_call`` with meta copies of
the parameters and buffers): no memory, no arithmetic, no change to the real model, its buffers or the random state,
and no DDP hook fires. FlopCounterMode counts the matrix products, convolutions and attention, as MFU is defined.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from scaletrain.rank import flops

log = logging.getLogger("scaletrain")

COUNT_ROWS = 2  # rows of the counted batch (BatchNorm needs more than one in training mode)


def sample_rows(train: Any, rows: int = COUNT_ROWS) -> tuple[Any, Any]:
    """The first ``rows`` samples of a TorchTask's training data: in-memory tensors, or a Dataset's first items."""
    if isinstance(train, tuple):
        return train[0][:rows], train[1][:rows]
    from torch.utils.data import default_collate

    return default_collate([train[i] for i in range(min(rows, len(train)))])


def training_flops_per_sample(model: torch.nn.Module, loss_fn: Any, x: Any, y: Any) -> float | None:
    """Forward plus backward FLOPs per sample of ``model`` on the batch (x, y), or None when the model cannot run
    on the meta device (it reads tensor values, or holds tensors outside its parameters and buffers)."""
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    try:
        state = {n: torch.empty_like(p, device="meta").requires_grad_(p.requires_grad) for n, p in
                 model.named_parameters()}  # fmt: skip
        state.update({n: torch.empty_like(b, device="meta") for n, b in model.named_buffers()})
        with FlopCounterMode(display=False) as counter:
            out = functional_call(model, state, (x.to("meta"),))
            loss_fn(out.float(), y.to("meta")).backward()
        return counter.get_total_flops() / len(x) or None
    except Exception as exc:  # noqa: BLE001  (a user model may fail on meta tensors in any way)
        log.info("model FLOPs not counted (%s: %s); set train.flops_per_sample to report MFU", type(exc).__name__,
                 str(exc).splitlines()[0] if str(exc) else "")  # fmt: skip
        return None


def device_peak(device: torch.device, precision: str, devices: int = 1) -> flops.Peak | None:
    """One of the rank's ``devices``' peak: the table's for a GPU or TPU, measured for a CPU (also XLA's CPU devices,
    which share the process's threads)."""
    if device.type == "cuda":
        return flops.table_peak(torch.cuda.get_device_name(device), precision)
    if device.type == "xla":
        kind = _xla_device_kind()
        if kind != "CPU":
            return flops.table_peak(kind, precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(flops.CPU_BENCH_SIZE, flops.CPU_BENCH_SIZE, dtype=dtype)
    b = torch.randn(flops.CPU_BENCH_SIZE, flops.CPU_BENCH_SIZE, dtype=dtype)
    return flops.shared(flops.cpu_peak("torch", precision, torch.get_num_threads(), lambda: torch.mm(a, b)), devices)


def _xla_device_kind() -> str:
    """ "CPU", or the accelerator's name as the peak table spells it ("TPU v4")."""
    import torch_xla.runtime as xr

    kind = xr.device_type() or "CPU"
    if kind == "TPU":
        try:
            import torch_xla.tpu

            return f"TPU v{torch_xla.tpu.version()}"
        except Exception:  # noqa: BLE001  (the version is only for the peak table's lookup)
            return "TPU"
    return kind
