"""Policy heads shared by several methods: the Gaussian policy (BC, AWR), the flow-matching velocity network
(flow BC, flow GCBC, CFGRL) with its training pair and (guided) sampler, and per-sample gradient norms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from cfgrl.flow import flow_matching_pair, guided_euler_sample
from cfgrl.nets import mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # clip of the learned log-std (ExORL / OGBench actors)


# ----------------------------------------------------------------------------------------------- Gaussian policy

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
        if std_mode not in ("fixed", "learned"):
            raise ValueError(f"std_mode must be 'fixed' or 'learned', got {std_mode!r}")
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


# ---------------------------------------------------------------------------------------------- flow velocity

def sinusoidal_time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """t (B, 1) in [0, 1] -> (B, dim): [cos(t' f_k), sin(t' f_k)] with t' = max_period * t and frequencies
    f_k = max_period^(-k / (dim/2)), k = 0 .. dim/2 - 1 (the transformer embedding of a step index in 0..max_period;
    the ExORL CFGRL actor embeds its grid time like this with dim 16)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    args = (t * max_period) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class FlowVelocity(nn.Module):
    """Velocity field v(cond, a_t, t) of a flow-matching policy: an MLP on [cond, a_t, time features].

    time_embedding 'scalar': t is one raw input (OGBench code); 'sinusoidal': a `time_dim`-d sinusoidal
    embedding (ExORL code). cond is whatever conditions the policy (observation, goal, label embedding).
    arch 'ogbench' is the reference's GCActorVectorField (one MLP, Xavier-uniform output layer); arch 'exorl' its
    ExORL DiffusionPolicy (a trunk with activate_final, so no LayerNorm on the last hidden layer, then a plain
    flax Dense output layer: LeCun truncated-normal init).
    """

    def __init__(self, cond_dim: int, action_dim: int, hidden: Sequence[int], activation: str = "gelu",
                 layer_norm: bool = False, time_embedding: str = "scalar", time_dim: int = 16, *,
                 arch: str = "ogbench", init: str = "parity", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if time_embedding not in ("scalar", "sinusoidal"):
            raise ValueError(f"time_embedding must be 'scalar' or 'sinusoidal', got {time_embedding!r}")
        self.time_embedding, self.time_dim = time_embedding, time_dim
        t_dim = 1 if time_embedding == "scalar" else time_dim
        exorl = arch == "exorl"
        self.net = mlp(cond_dim + action_dim + t_dim, hidden, action_dim, activation, layer_norm, arch=arch,
                       init=init, norm_last_hidden=not exorl, out_init="lecun" if exorl else "xavier",
                       generator=generator)

    def forward(self, cond: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """cond (B, C), a_t (B, A), t (B, 1) -> velocity (B, A)."""
        if self.time_embedding == "sinusoidal":
            t = sinusoidal_time_embedding(t, self.time_dim)
        return self.net(torch.cat([cond, a_t, t], dim=-1))


def flow_pair(actions: torch.Tensor, generator: torch.Generator, time_grid: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The flow-matching input a_t, time t (B, 1) and target velocity for data actions (B, A).

    time_grid 0: t ~ U[0, 1] (cfgrl.flow.flow_matching_pair). time_grid N > 0: t uniform on the N + 1 grid points
    {0, 1/N, ..., 1} (the ExORL code with N = 32; sample with flow_steps = N so the sampler visits the same grid).
    """
    if time_grid <= 0:
        return flow_matching_pair(actions, generator)
    noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
    t = torch.randint(0, time_grid + 1, (actions.shape[0], 1), generator=generator, device=actions.device)
    t = t.to(actions.dtype) / time_grid
    return (1.0 - t) * noise + t * actions, t, actions - noise


def flow_act(net: FlowVelocity, cond: torch.Tensor, null_cond: torch.Tensor | None, w: torch.Tensor | float,
             generator: torch.Generator, steps: int, action_dim: int, clip: float | None = 1.0) -> torch.Tensor:
    """Sample actions (B, A) in [-1, 1] by Euler-integrating v = v(null) + w (v(cond) - v(null)) from noise.

    cond, null_cond (B, C): the conditional and the null conditioning rows (null_cond None: unguided, v(cond)).
    w: scalar or (B,), each row its own weight. The two branches go through the network as one batch of 2B
    rows; when every w is 0 (or 1) only the needed branch is computed, so w = 0 / 1 reproduce it bit for bit.
    clip: the samples are clipped to [-clip, clip]; None leaves them unclipped (e.g. subgoals of a hierarchical
    policy, which live in goal space, not the action box).
    """
    b = cond.shape[0]
    w = torch.as_tensor(w, dtype=cond.dtype, device=cond.device).expand(b)
    if null_cond is None:
        need_cond, need_null = True, False
        w = torch.ones_like(w)
    else:
        need_cond, need_null = bool((w != 0).any()), bool((w != 1).any())
    both = torch.cat([cond, null_cond]) if need_cond and need_null else None

    def velocity(a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if both is not None:
            v = net(both, a.repeat(2, 1), t.repeat(2, 1))
            return v[:b], v[b:]
        v = net(cond if need_cond else null_cond, a, t)
        return v, v

    noise = torch.randn((b, action_dim), generator=generator, device=cond.device, dtype=cond.dtype)
    return guided_euler_sample(velocity, noise, w, steps, clip=clip)


# ------------------------------------------------------------------------------------ per-sample gradient norms

def per_sample_grad_norms(module: nn.Module, loss_fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor],
                          chunk_size: int = 64) -> torch.Tensor:
    """Norm of the gradient of each sample's loss w.r.t. the module's trainable parameters.

    loss_fn(call, *row_inputs) -> scalar loss of one sample, where call(*args) runs the module with the given
    parameters and row_inputs are `inputs` indexed at one sample, each with a leading batch dimension of 1.
    inputs: tensors (B, ...). Returns (B,). Computed by torch.func (vmap of grad), `chunk_size` samples at a time.
    """
    params = {k: p.detach() for k, p in module.named_parameters() if p.requires_grad}
    buffers = dict(module.named_buffers())

    def sample_loss(p: dict[str, torch.Tensor], *row: torch.Tensor) -> torch.Tensor:
        call = lambda *args: functional_call(module, (p, buffers), args)
        return loss_fn(call, *(x.unsqueeze(0) for x in row)).reshape(())

    grads = vmap(grad(sample_loss), in_dims=(None, *([0] * len(inputs))), chunk_size=chunk_size)(params, *inputs)
    return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
