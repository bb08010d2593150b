"""A reference PyTorch implementation of the baseline network, for the benchmark only.

Same layers, same initialisation scheme (Glorot-uniform weights, zero biases, as Keras), same
optimizer (Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-7 as Keras), same loss, batch size and
shuffled mini-batches over the same arrays.  Needs ``pip install -e .[bench]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class BaselineNet(nn.Module):
    """The baseline network (``mnist_report.modeling.model.build_baseline_model``) in PyTorch: 225,034 parameters."""

    def __init__(self, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10)
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):  # x: (N, 1, 28, 28); returns logits (softmax is inside the loss)
        # Keras flattens (H, W, C); PyTorch (C, H, W): the same 1,600 numbers in another order,
        # which changes nothing about the network.
        return self.head(self.features(x))


class TorchTrainer:
    """Holds the model, optimizer and data as tensors; one call of ``epoch`` = one pass."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, batch_size: int, seed: int, threads: int):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        self.generator = torch.Generator().manual_seed(seed)
        self.x = torch.from_numpy(np.ascontiguousarray(x_train.transpose(0, 3, 1, 2)))  # NHWC -> NCHW
        self.y = torch.from_numpy(y_train.astype(np.int64))
        self.batch_size = batch_size
        self.model = BaselineNet()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        self.loss = nn.CrossEntropyLoss()

    def epoch(self) -> float:
        self.model.train()
        order = torch.randperm(len(self.y), generator=self.generator)
        total = 0.0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.x[idx]), self.y[idx])
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return total / len(order)

    @torch.inference_mode()
    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        self.model.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return torch.cat([self.model(xt[i : i + batch_size]) for i in range(0, len(xt), batch_size)]).numpy()
