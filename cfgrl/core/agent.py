"""What every method shares: the training config fields, the agent interface, and its checkpointable state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cfgrl.core.nets import ACTIVATIONS, ARCHS, INITS, check_choice
from cfgrl.seeding import derive_seed

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Range:
    """The values a numeric config field may take: low to high, each end included unless it is open."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, x: float) -> bool:
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def text(self) -> str:
        """'[1, 1000000000]', '(0, 1]', ...: integers in full, others as %g."""
        def number(x: float) -> str:
            return f"{int(x)}" if float(x).is_integer() else f"{x:g}"

        return f"{'(' if self.low_open else '['}{number(self.low)}, {number(self.high)}{')' if self.high_open else ']'}"


# ranges of fields that several methods declare, written once (each config's RANGES names the one it uses)
FLOW_STEPS = Range(1, 10_000)  # Euler steps of a flow sampler
TIME_DIM = Range(2, 65_536)  # size of a sinusoidal time embedding
TIME_GRID = Range(0, 1e6)  # 0: t ~ U[0, 1]; N: t on an N-step grid
DISCOUNT = Range(0, 1)  # gamma of a Bellman target
POLYAK_RATE = Range(0, 1, low_open=True)  # tau of a target network's update
NULL_PROB = Range(0, 1)  # probability of dropping a condition (label, goal) to null in training
GEOMETRIC_DISCOUNT = Range(0, 1, low_open=True, high_open=True)  # gamma of geometric future-goal offsets
SUBGOAL_STEPS = Range(1, 1e6)  # steps ahead of a hierarchical subgoal


def _merged(cls: type, table: str) -> dict[str, Any]:
    """A class-level table (`CHOICES`, `RANGES`) merged over the class hierarchy, subclasses last."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass).get(table, {}))
    return out


@dataclass
class TrainConfig:
    """Fields every method has. Methods subclass this and add their own, each with a comment."""

    steps: int = 100_000  # gradient updates
    batch_size: int = 256  # transitions per update
    lr: float = 3e-4  # Adam(W) learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    log_every: int = 1_000  # updates between metric rows (the only host syncs in the loop)
    checkpoint_every: int = 10_000  # updates between resumable checkpoints
    snapshot_every: int | None = None  # updates between saved model snapshots (None: none; eval.at_steps uses them)
    device: str = "auto"  # 'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1', ...
    # network initialisation: 'parity' (the reference's flax init: Xavier-uniform kernels, zero biases, Embed-style
    # embeddings and null goals) or 'torch' (PyTorch defaults and zero null goals, for ablations); cfgrl/core/nets.py
    init: str = "parity"
    # MLP layout of the reference code the method follows: 'ogbench' (Dense -> act -> LayerNorm) or 'exorl'
    # (Dense -> LayerNorm -> act, the ExORL actors without LayerNorm on their last hidden layer); None: the method's
    # own reference (the ExORL code for CFGRL's 'filtered' scheme and AWR's 'learned' std, else OGBench's)
    arch: str | None = None
    # arithmetic of the training loss: 'fp32', or 'bf16' (autocast of the forward and loss; weights, optimiser and
    # acting stay fp32). fp32 by default: bf16 was not shown to leave results unchanged (docs/performance.md), and
    # on CPUs without bf16 units (this project's AVX2 machine) the paper-size update ran 11x slower
    precision: str = "fp32"

    # the values each enumerated field may take, and the range of each numeric one (spec validation reads them
    # through `choices()` and `ranges()`); every subclass declares those of the fields it adds
    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"init": INITS, "arch": ARCHS, "activation": tuple(ACTIVATIONS),
                                                     "precision": PRECISIONS}
    RANGES: ClassVar[dict[str, Range]] = {"steps": Range(1, 1e9), "batch_size": Range(1, 1e6),
                                          "lr": Range(0, 1, low_open=True), "weight_decay": Range(0, 1),
                                          "log_every": Range(1, 1e9), "checkpoint_every": Range(1, 1e9),
                                          "snapshot_every": Range(1, 1e9)}

    @classmethod
    def choices(cls) -> dict[str, tuple[Any, ...]]:
        """Enumerated fields and their allowed values, merged over the config's class hierarchy."""
        return _merged(cls, "CHOICES")

    @classmethod
    def ranges(cls) -> dict[str, Range]:
        """Numeric fields and their ranges, merged over the config's class hierarchy."""
        return _merged(cls, "RANGES")


def adamw(params: list[torch.Tensor], config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `params` with the config's lr and weight decay: the fused kernel where supported, else foreach on
    CUDA and the per-tensor loop on CPU (the choice `Agent.make_optimizer` documents)."""
    try:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                 foreach=device.type == "cuda")


class Agent(nn.Module):
    """The interface every method implements, and the parts they share.

    - `loss(batch, generator) -> (loss, info)`: the scalar training loss of a batch of tensors and detached
      scalar metrics keyed 'critic/...', 'value/...' or 'actor/...'; every random draw (flow noise, times,
      dropout) comes from `generator`, so a validation loss can use a stream of its own.
    - `update(batch) -> info`: one gradient step on `loss(batch, self.generator)`, written once here (an agent with
      target networks updates them in `before_step`). No host sync: metrics stay tensors until the loop logs.
    - `act(observations (B, obs_dim), goals (B, goal_dim) | None, w (B,) | float, noise (B, noise_dim) | None)`:
      actions (B, A) in [-1, 1]; `noise` is the row's own randomness (None: drawn from the agent's generator), so
      evaluation can give every episode a stream of its own whatever shares its batch.
    - `batch_kind` (class attribute): the batches it trains on ('transitions', 'goals', 'subgoals' or 'any'; see
      cfgrl.data.samplers.BatchRequest); `batch_options(config)` adds the goal-sampling options.
    - `full_state()` / `load_full_state()`: networks, optimiser, sampling RNG and step, so a run resumes exactly;
      `state_dict()` (nn.Module's) is the networks alone, what `model.pt` stores.
    """

    Config: ClassVar[type[TrainConfig]] = TrainConfig
    guided: ClassVar[bool] = False  # True when `act` uses the guidance weight w
    goal_conditioned: ClassVar[bool] = False  # the policy's input includes the goal
    batch_kind: ClassVar[str] = "any"

    def __init__(self, config: TrainConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__()
        self.config = config
        self.obs_dim, self.action_dim, self.goal_dim = obs_dim, action_dim, goal_dim
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        check_choice(config.init, INITS, "init")
        self.arch = check_choice(self.resolved_arch(config), ARCHS, "arch")
        # network initialisation draws from its own CPU stream, seeded from (seed, 1): independent of the sampling
        # noise and of torch's global RNG
        self.init_generator = torch.Generator().manual_seed(derive_seed(seed, 1))
        self.step = 0
        self.optimizer: torch.optim.Optimizer | None = None

    @classmethod
    def resolved_arch(cls, config: TrainConfig) -> str:
        """The MLP layout in use: the config's `arch`, else the reference code the method follows (OGBench's)."""
        return config.arch or "ogbench"

    @classmethod
    def batch_options(cls, config: TrainConfig) -> dict[str, Any]:
        """The goal-sampling options of the batches this method trains on (with `batch_kind`, the fields of a
        cfgrl.data.samplers.BatchRequest): geometric_discount for goal batches, subgoal_steps for subgoal ones."""
        options: dict[str, Any] = {}
        if cls.batch_kind in ("goals", "subgoals", "any"):
            options["geometric_discount"] = getattr(config, "geometric_discount", None)
        if cls.batch_kind == "subgoals":
            options["subgoal_steps"] = config.subgoal_steps  # type: ignore[attr-defined]
        return options

    def net_options(self) -> dict[str, Any]:
        """Keyword arguments of every network constructor: layout, initialisation and its generator."""
        return {"arch": self.arch, "init": self.config.init, "generator": self.init_generator}

    def make_optimizer(self, exclude: nn.Module | None = None) -> None:
        """One AdamW over the trainable parameters (target networks, requires_grad False, are left out, and those of
        `exclude`, a shared module another agent's optimiser steps); call at the end of a subclass's __init__,
        after .to(device). Uses the fused kernel (CPU and CUDA, torch >= 2.4: at paper size on 2 CPU threads
        1.2 ms per step against 4.3 ms for the per-tensor loop), falling back to foreach on CUDA / the loop on CPU
        where unsupported. AdamW is elementwise: splitting the parameters over several optimisers changes no
        number."""
        skip = {id(p) for p in exclude.parameters()} if exclude is not None else set()
        self.optimizer = adamw([p for p in self.parameters() if p.requires_grad and id(p) not in skip], self.config,
                               self.device)

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def before_step(self) -> None:
        """Runs after the backward pass, before the parameters change (the critics' Polyak update, which both
        reference codes compute from the pre-step parameters). Nothing by default."""

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimiser step on the batch's loss (under bf16 autocast with `precision: bf16`); returns its detached
        metrics."""
        device = next(self.parameters()).device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss, info = self.loss(batch, self.generator)
        self.apply_loss(loss.float())
        return info

    def apply_loss(self, loss: torch.Tensor) -> None:
        """The gradient step every update takes: backward, `before_step`, optimiser step."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.before_step()
        self.optimizer.step()
        self.step += 1

    @property
    def input_dim(self) -> int:
        """Width of `policy_input`: the observation, plus the goal for goal-conditioned methods."""
        return self.obs_dim + (self.goal_dim if self.goal_conditioned else 0)

    def policy_input(self, observations: torch.Tensor, goals: torch.Tensor | None) -> torch.Tensor:
        """(B, obs_dim) [+ (B, goal_dim) when goal-conditioned] -> (B, input_dim)."""
        if not self.goal_conditioned:
            return observations
        assert goals is not None, f"{type(self).__name__} needs goals"
        return torch.cat([observations, goals], dim=-1)

    def reseed(self, seed: int) -> None:
        """Reset the sampling RNG (used before evaluation so episodes are reproducible)."""
        self.generator.manual_seed(seed)

    def full_state(self) -> dict[str, Any]:
        assert self.optimizer is not None
        return {
            "networks": self.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        assert self.optimizer is not None
        self.load_state_dict(state["networks"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())  # a CUDA run's checkpoint loads with map_location=cuda
        self.step = int(state["step"])

    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    @property
    def noise_dim(self) -> int:
        """Standard normal numbers one `act` call consumes per row (its `noise` argument's width): the action
        dimension for flow policies, goal_dim + action_dim for hierarchical ones, 0 for mean-action policies."""
        return self.action_dim
