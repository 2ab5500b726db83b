"""A GPT-style decoder in PyTorch (``workload=charlm``), and its byte windows as a Dataset; ``gpt_keras.py`` is its
Keras twin, layer for layer.

Pre-norm blocks of causal self-attention and a 4x MLP with exact GELU, learned positions, an untied output head.
GPT-2's initialisation: weights N(0, 0.02), the residual projections N(0, 0.02 / sqrt(2 x layers)), biases zero,
LayerNorm eps 1e-5.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scaletrain.workloads.byte_windows import windows

INIT_STD = 0.02
LN_EPS = 1e-5


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, seq_len: int, d_model: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model, eps=LN_EPS)
        self.head = nn.Linear(d_model, vocab, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() > 1:
                residual = name.endswith(("proj.weight", "out.weight"))
                nn.init.normal_(p, 0.0, INIT_STD / math.sqrt(2 * n_layers) if residual else INIT_STD)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (batch, seq, vocab) of each next byte."""
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class ByteWindows(torch.utils.data.Dataset):
    """(x, y) byte windows of a memory-mapped file: y is x shifted by one byte; windows of seq_len + 1 bytes."""

    def __init__(self, path: Path, seq_len: int, limit: int | None = None) -> None:
        self.path, self.seq_len, self.count = path, seq_len, windows(path, seq_len, limit)
        self._data: np.ndarray | None = None  # opened in the process that reads (a DataLoader worker)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        if self._data is None:
            self._data = np.memmap(self.path, dtype=np.uint8, mode="r")
        size = self.seq_len + 1
        window = torch.from_numpy(self._data[index * size : (index + 1) * size].astype(np.int64))
        return window[:-1], window[1:]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}
