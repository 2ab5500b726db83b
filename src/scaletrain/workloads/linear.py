"""The classic first program: learn y = 2x + 1 from x = 1..5."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask

log = logging.getLogger("scaletrain")


@dataclass
class Config:
    name: str = "linear"


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(1, 6, dtype=np.float32).reshape(-1, 1)
    return x, 2 * x + 1


def _report_keras(model) -> dict[str, float]:
    weight, bias = (float(np.ravel(w)[0]) for w in model.get_weights())
    prediction = float(np.ravel(model(np.array([[6.0]], dtype=np.float32)))[0])
    return report(weight, bias, prediction)


def _report_torch(model) -> dict[str, float]:
    import torch

    with torch.no_grad():
        weight = model.weight.item()
        bias = model.bias.item()
        prediction = model(torch.tensor([[6.0]], device=model.weight.device)).item()
    return report(weight, bias, prediction)


def report(weight: float, bias: float, prediction_x6: float) -> dict[str, float]:
    log.info("linear: weight=%.4f bias=%.4f prediction(x=6)=%.4f", weight, bias, prediction_x6)
    return {"weight": weight, "bias": bias, "prediction_x6": prediction_x6}


class Linear(WorkloadPlugin):
    Config = Config

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        import torch

        torch.manual_seed(seed)
        x, y = data()
        return TorchTask(
            model=torch.nn.Linear(1, 1),
            train=(torch.from_numpy(x), torch.from_numpy(y)),
            loss="mse",
            report=_report_torch,
        )

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        from scaletrain.workloads import keras_models

        x, y = data()
        return TFTask(
            model_fn=keras_models.seeded(seed, keras_models.linear), train=(x, y), loss="mse", report=_report_keras
        )


PLUGIN = Linear()
