"""A dense autoencoder, trained by flowmix, whose code layer gives low-dimensional image features.

The architecture is N2D's (McConville et al., 2020, after DEC's): D-500-500-2000-k encoder, the
mirror decoder, ReLU between layers, linear code and output, Glorot-uniform weights, zero biases,
mean squared reconstruction error, Adam. N2D pretrained it for 1000 epochs on a GPU; flowmix
defaults to far fewer so that a CPU trains it on MNIST in minutes (see ``n_epochs``). No
pretrained weights exist to download here, so the network is always trained from the seed.

>>> X = np.random.default_rng(0).random((64, 12), dtype=np.float32)
>>> train_autoencoder(X, 3, hidden=(8,), n_epochs=2, batch_size=16, seed=0).shape
(64, 3)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from flowmix.progress import Progress

__all__ = ["AUTOENCODER_HIDDEN", "Autoencoder", "encode", "fit_autoencoder", "train_autoencoder"]

#: N2D's hidden layer widths of the encoder (the decoder mirrors them).
AUTOENCODER_HIDDEN: tuple[int, ...] = (500, 500, 2000)


def _dense_stack(widths: Sequence[int], generator: torch.Generator) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            bound = float(np.sqrt(6.0 / (n_in + n_out)))  # Glorot uniform, as Keras
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.zero_()
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Encoder D -> hidden -> k and its mirror decoder.

    Parameters
    ----------
    n_features : int
        Input dimension D.
    n_components : int
        Code dimension k.
    hidden : sequence of int
        Encoder hidden widths.
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(self, n_features: int, n_components: int, hidden: Sequence[int], generator: torch.Generator):
        super().__init__()
        widths = [n_features, *hidden, n_components]
        self.encoder = _dense_stack(widths, generator)
        self.decoder = _dense_stack(widths[::-1], generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def fit_autoencoder(
    X: np.ndarray,
    n_components: int,
    *,
    hidden: Sequence[int] = AUTOENCODER_HIDDEN,
    n_epochs: int = 30,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    verbose: bool = False,
) -> tuple[Autoencoder, np.ndarray]:
    """Train an :class:`Autoencoder` on ``X`` to reconstruct it (mean squared error, Adam).

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Inputs, e.g. pixels / 255.
    n_components : int
        Code dimension.
    hidden : sequence of int, default (500, 500, 2000)
    n_epochs : int, default 30
        Passes over the data (N2D: 1000; 30 take about 6 minutes for MNIST on two CPU cores).
    batch_size : int, default 256
    learning_rate : float, default 1e-3
        Adam step size.
    seed : int, default 0
        Seed of the initial weights and the mini-batch order: the same seed gives the same
        network on the same machine.
    device : str, default "cpu"
    verbose : bool, default False
        Show the progress with the reconstruction error (a bar on a terminal, else two log lines).

    Returns
    -------
    model : Autoencoder
        The trained network (in evaluation mode, on ``device``).
    losses : ndarray of shape (n_epochs,)
        Mean reconstruction error of each epoch.
    """
    generator = torch.Generator().manual_seed(int(seed))
    data = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)
    model = Autoencoder(data.shape[1], n_components, hidden, generator).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    n = data.shape[0]
    losses = np.zeros(n_epochs)
    with Progress(n_epochs, "autoencoder", unit="epoch", verbose=verbose, leave=False) as bar:
        for epoch in range(n_epochs):
            order = torch.randperm(n, generator=generator).to(device)
            total = torch.zeros((), device=device)
            for start in range(0, n, batch_size):
                batch = data[order[start : start + batch_size]]
                loss = torch.nn.functional.mse_loss(model(batch), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.shape[0]
            losses[epoch] = float(total) / n
            bar.update()
            bar.set_postfix(mse=f"{losses[epoch]:.5f}")
    return model.eval(), losses


@torch.no_grad()
def encode(model: Autoencoder, X: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The codes of the rows of ``X`` (N, D) under ``model``: float32 (N, k)."""
    device = next(model.parameters()).device
    data = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)
    codes = [model.encoder(data[s : s + chunk]) for s in range(0, data.shape[0], chunk)]
    return torch.cat(codes).cpu().numpy().astype(np.float32)


def train_autoencoder(X: np.ndarray, n_components: int, **settings: Any) -> np.ndarray:
    """The codes of ``X``'s rows under an autoencoder trained on them (:func:`fit_autoencoder`'s settings)."""
    model, _ = fit_autoencoder(X, n_components, **settings)
    return encode(model, X)
