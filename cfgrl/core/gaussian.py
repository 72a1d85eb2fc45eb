"""The Gaussian policy head of BC, GCBC, the hierarchical Gaussian baselines and AWR: N(mu(x), diag(std)^2), no tanh."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cfgrl.core.nets import check_choice, mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # clip of the learned log-std (ExORL / OGBench actors)
STD_MODES = ("fixed", "learned")


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, diag(exp(log_std))^2) summed over action dims: (B, A), (A,) or (B, A), (B, A) -> (B,)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class GaussianPolicy(nn.Module):
    """pi(a | x) = N(mu(x), diag(std)^2), no tanh.

    std_mode 'fixed': std = `fixed_std` (OGBench's const_std actor). 'learned': a state-independent learned
    log-std (initialised at 0) clipped to [-5, 2] (the ExORL actor). `mean_clip` clips the mean to
    [-mean_clip, mean_clip] when set (the ExORL actor uses 5).
    The mean network is the reference's actor trunk (an MLP with `activate_final`) plus a mean layer initialised
    with default_init(1e-2), i.e. Xavier-uniform with gain 0.1 under init 'parity' (both reference codes); under
    arch 'exorl' the last hidden layer has no LayerNorm, as rlbase's `Policy`.
    """

    def __init__(self, in_dim: int, action_dim: int, hidden: Sequence[int], activation: str = "gelu",
                 layer_norm: bool = False, std_mode: str = "fixed", fixed_std: float = 1.0,
                 mean_clip: float | None = None, *, arch: str = "ogbench", init: str = "parity",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_choice(std_mode, STD_MODES, "std_mode")
        self.mean_net = mlp(in_dim, hidden, action_dim, activation, layer_norm, arch=arch, init=init,
                            norm_last_hidden=arch != "exorl", out_gain=0.1 if init == "parity" else 1.0,
                            generator=generator)
        self.std_mode, self.mean_clip = std_mode, mean_clip
        if std_mode == "learned":
            self.log_std = nn.Parameter(torch.zeros(action_dim))
        else:
            self.register_buffer("log_std", torch.full((action_dim,), math.log(fixed_std)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, in_dim) -> mean (B, A), log_std (A,)."""
        mean = self.mean_net(x)
        if self.mean_clip is not None:
            mean = mean.clamp(-self.mean_clip, self.mean_clip)
        return mean, self.clipped_log_std()

    def clipped_log_std(self) -> torch.Tensor:
        """The log-std (A,) in use (the learned one clipped to [-5, 2])."""
        return self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX) if self.std_mode == "learned" else self.log_std

    def log_prob(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """x (B, in_dim), actions (B, A) -> (B,)."""
        mean, log_std = self(x)
        return gaussian_log_prob(mean, log_std, actions)
