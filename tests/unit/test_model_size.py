"""model_size reads the same figures from a torch module, DDP's view of it, a Keras model and a list of tensors."""

from __future__ import annotations

import pytest

from scaletrain.rank.model_size import model_size


def test_torch_module_counts_only_what_trains():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2).double())
    model[0].bias.requires_grad_(False)
    assert model_size(model) == {"num_parameters": 12 + 8 + 2, "gradient_bytes": 12 * 4 + (8 + 2) * 8}
    weight = torch.zeros(5, requires_grad=True)
    assert model_size([weight, torch.ones(3)]) == {"num_parameters": 5, "gradient_bytes": 20}


@pytest.mark.tf
def test_keras_model_counts_its_trainable_variables():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    model.layers[1].trainable = False
    assert model_size(model) == {"num_parameters": 12 + 4, "gradient_bytes": 16 * 4}


def test_anything_else_is_refused_by_name():
    with pytest.raises(TypeError, match="not a dict"):
        model_size({"w": 1})
