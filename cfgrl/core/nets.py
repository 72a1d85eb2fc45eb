"""Network building blocks shared by every method, initialised as the reference implementation's flax networks.

Two reference code bases (the authors' JAX code) build their MLPs differently; `arch` names which one a network
follows (docs/fidelity.md has the line-by-line audit):
- 'ogbench' (ogbench/utils/networks.py `MLP`): per hidden layer Dense -> activation -> LayerNorm (when enabled);
  the last layer of the MLP is a plain Dense.
- 'exorl' (rlbase/utils/networks.py `MLP`, the ExORL code): per hidden layer Dense -> LayerNorm -> activation.
  Actor trunks there are built with `activate_final=True`, which skips the LayerNorm of the last hidden layer;
  `norm_last_hidden=False` reproduces that.
`init` names the initialisation:
- 'parity' (default): as flax with the reference's `default_init` = variance_scaling(1, 'fan_avg', 'uniform'),
  i.e. Xavier-uniform kernels, zero biases; output layers scaled as the reference's heads (`out_gain`, or
  `out_init='lecun'` for a plain flax Dense: LeCun truncated normal); embeddings as flax's `nn.Embed`
  (N(0, 1 / features)); LayerNorm epsilon 1e-6 (flax's).
- 'torch': PyTorch's own defaults (Kaiming-uniform Linear, N(0, 1) embeddings, zero null goals, epsilon 1e-5),
  the suite before 2026-12; kept for ablations only.
Every initialiser draws from an explicit torch.Generator, never from the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cfgrl.core.fast_gelu import TanhGELU

ARCHS = ("ogbench", "exorl")
INITS = ("parity", "torch")
# 'gelu' is flax's nn.gelu, the tanh approximation (the reference's default; on CPU computed by cfgrl.core.fast_gelu);
# 'gelu_exact' is the erf form.
ACTIVATIONS: dict[str, type[nn.Module] | tuple[type[nn.Module], dict[str, str]]] = {
    "gelu": TanhGELU, "gelu_exact": nn.GELU, "relu": nn.ReLU, "mish": nn.Mish,
    "silu": nn.SiLU,
}
FLAX_LAYER_NORM_EPS = 1e-6


def make_activation(name: str) -> nn.Module:
    """An activation module by name (see ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    entry = ACTIVATIONS[name]
    cls, kwargs = entry if isinstance(entry, tuple) else (entry, {})
    return cls(**kwargs)


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {tuple(choices)}, got {value!r}")
    return value


def _truncated_normal_(tensor: torch.Tensor, std: float, generator: torch.Generator | None) -> torch.Tensor:
    """jax.random.truncated_normal(-2, 2) * std / 0.8796...: a normal truncated at two of its own standard
    deviations and rescaled so that the truncated distribution has standard deviation `std`."""
    with torch.no_grad():
        stddev = std / 0.87962566103423978
        tensor.normal_(0.0, 1.0, generator=generator)
        while True:  # resample the few values outside (-2, 2)
            bad = tensor.abs() >= 2.0
            if not bad.any():
                break
            tensor[bad] = torch.randn(int(bad.sum()), generator=generator, dtype=tensor.dtype).to(tensor.device)
        return tensor.mul_(stddev)


def init_linear(layer: nn.Linear, init: str, *, gain: float = 1.0, kind: str = "xavier",
                generator: torch.Generator | None = None) -> nn.Linear:
    """Initialise a Linear layer in place. 'parity': kind 'xavier' = variance_scaling(gain^2, 'fan_avg',
    'uniform') (the reference's default_init(gain^2)), kind 'lecun' = flax Dense's default (LeCun truncated
    normal, std 1 / sqrt(fan_in)); zero bias. 'torch': PyTorch's default reset (the generator is not used)."""
    if init == "torch":
        layer.reset_parameters()
        return layer
    fan_out, fan_in = layer.weight.shape
    with torch.no_grad():
        if kind == "xavier":
            bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-bound, bound, generator=generator)
        elif kind == "lecun":
            _truncated_normal_(layer.weight, gain / math.sqrt(fan_in), generator)
        else:
            raise ValueError(f"unknown Linear init kind {kind!r}")
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def init_embedding(weight: torch.Tensor, init: str, generator: torch.Generator | None = None,
                   torch_default: str = "normal") -> torch.Tensor:
    """Initialise an embedding table (num_embeddings, features) in place. 'parity': flax nn.Embed's
    variance_scaling(1, 'fan_in', 'normal', out_axis=0), i.e. N(0, 1 / features). 'torch': N(0, 1)
    (nn.Embedding's default), or zeros when torch_default='zeros' (the suite's old null goals)."""
    with torch.no_grad():
        if init == "parity":
            return weight.normal_(0.0, 1.0 / math.sqrt(weight.shape[-1]), generator=generator)
        if torch_default == "zeros":
            return weight.zero_()
        return weight.normal_(0.0, 1.0, generator=generator)


def make_null_goal(goal_dim: int, init: str, generator: torch.Generator | None = None) -> nn.Parameter:
    """A learned null goal (goal_dim,): the reference's `UnconditionalEmbedding`, a one-row nn.Embed, so
    N(0, 1 / goal_dim) under 'parity'; zeros under 'torch' (the suite's old null goal)."""
    return nn.Parameter(init_embedding(torch.empty(1, goal_dim), init, generator, torch_default="zeros")[0])


def make_layer_norm(width: int, init: str) -> nn.LayerNorm:
    return nn.LayerNorm(width, eps=FLAX_LAYER_NORM_EPS if init == "parity" else 1e-5)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "gelu",
    layer_norm: bool = False,
    *,
    arch: str = "ogbench",
    init: str = "parity",
    norm_last_hidden: bool = True,
    out_gain: float = 1.0,
    out_init: str = "xavier",
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """An MLP with hidden widths `hidden` and a linear output layer: input (..., in_dim) -> (..., out_dim).

    arch 'ogbench': [Linear -> act -> (LayerNorm)] per hidden width; 'exorl': [Linear -> (LayerNorm) -> act]
    (LayerNorm only when layer_norm; norm_last_hidden False drops it on the last hidden layer, as the ExORL
    actors do). Hidden layers: `init_linear(kind='xavier')`; the output layer: `init_linear(kind=out_init,
    gain=out_gain)` (Gaussian heads use gain 0.1, the reference's final_fc_init_scale 1e-2). Initialisation draws
    from `generator` in layer order.
    """
    check_choice(arch, ARCHS, "arch")
    check_choice(init, INITS, "init")
    layers: list[nn.Module] = []
    width = in_dim
    for i, h in enumerate(hidden):
        layers.append(init_linear(nn.Linear(width, h), init, generator=generator))
        norm = layer_norm and (norm_last_hidden or i + 1 < len(hidden))
        if arch == "exorl" and norm:
            layers.append(make_layer_norm(h, init))
        layers.append(make_activation(activation))
        if arch == "ogbench" and norm:
            layers.append(make_layer_norm(h, init))
        width = h
    layers.append(init_linear(nn.Linear(width, out_dim), init, gain=out_gain, kind=out_init, generator=generator))
    return nn.Sequential(*layers)


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; otherwise the named device."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)
