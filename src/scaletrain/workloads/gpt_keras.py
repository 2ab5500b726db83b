"""The Keras twin of ``gpt_torch.py``: the same layers, shapes, initialisation and parameter count."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

INIT_STD = 0.02
LN_EPS = 1e-5


def _normal(std: float) -> Any:
    return keras.initializers.RandomNormal(0.0, std)


class Block(keras.layers.Layer):
    def __init__(self, d_model: int, n_heads: int, n_layers: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.d_model, self.n_heads = d_model, n_heads
        residual = _normal(INIT_STD / math.sqrt(2 * n_layers))
        self.ln1 = keras.layers.LayerNormalization(epsilon=LN_EPS)
        self.qkv = keras.layers.Dense(3 * d_model, kernel_initializer=_normal(INIT_STD))
        self.proj = keras.layers.Dense(d_model, kernel_initializer=residual)
        self.ln2 = keras.layers.LayerNormalization(epsilon=LN_EPS)
        self.fc = keras.layers.Dense(4 * d_model, kernel_initializer=_normal(INIT_STD))
        self.out = keras.layers.Dense(d_model, kernel_initializer=residual)

    def call(self, x: Any) -> Any:
        t, c, h = ops.shape(x)[1], self.d_model, self.n_heads
        q, k, v = ops.split(self.qkv(self.ln1(x)), 3, axis=-1)
        q, k, v = (ops.transpose(ops.reshape(z, (-1, t, h, c // h)), (0, 2, 1, 3)) for z in (q, k, v))
        scores = ops.cast(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), "float32") / math.sqrt(c // h)
        causal = ops.tril(ops.ones((t, t), dtype="bool"))
        weights = ops.cast(ops.softmax(ops.where(causal, scores, -1e9), axis=-1), q.dtype)  # softmax in fp32
        y = ops.reshape(ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3)), (-1, t, c))
        x = x + self.proj(y)
        return x + self.out(keras.activations.gelu(self.fc(self.ln2(x)), approximate=False))


class Embeddings(keras.layers.Layer):
    """Byte embeddings plus learned position embeddings."""

    def __init__(self, vocab: int, seq_len: int, d_model: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokens = keras.layers.Embedding(vocab, d_model, embeddings_initializer=_normal(INIT_STD))
        self.positions = keras.layers.Embedding(seq_len, d_model, embeddings_initializer=_normal(INIT_STD))

    def call(self, ids: Any) -> Any:
        return self.tokens(ids) + self.positions(ops.arange(ops.shape(ids)[1]))


def gpt(vocab: int, seq_len: int, d_model: int, n_layers: int, n_heads: int) -> Any:
    """Logits (batch, seq, vocab) of each next byte, from int32 byte ids (batch, seq)."""
    ids = keras.Input((seq_len,), dtype="int32")
    x = Embeddings(vocab, seq_len, d_model)(ids)
    for _ in range(n_layers):
        x = Block(d_model, n_heads, n_layers)(x)
    x = keras.layers.LayerNormalization(epsilon=LN_EPS)(x)
    return keras.Model(ids, keras.layers.Dense(vocab, use_bias=False, kernel_initializer=_normal(INIT_STD))(x))
