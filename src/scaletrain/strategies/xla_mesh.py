"""The xla strategy's two refusals, said alike by the driver's check and by a rank that finds its devices differ."""

from __future__ import annotations

import math


def mesh_mismatch(shape: list[int], count: int, where: str) -> str:
    return (
        f"strategy.mesh_shape={list(shape)} spans {math.prod(shape)} devices but the job has {count} ({where}); "
        f"give a shape whose sizes multiply to {count}, such as [{count}]."
    )


def batch_mismatch(batch: int, count: int) -> str:
    fit = count * max(1, round(batch / count))
    return (
        f"train.global_batch_size={batch} cannot be split evenly over the {count} XLA devices of the mesh; "
        f"use a multiple of {count} such as {fit}."
    )
