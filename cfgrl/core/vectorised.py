"""K agents of one method and config trained as one batched computation: a vectorised seed group.

The members' parameters are stacked along a new leading dimension (K, ...), and each agent's own parameters become
views of its slice, so everything that reads an agent (acting, validation losses, state dicts, checkpoints) sees
its current values without a copy. One update is one `torch.func.vmap` of `grad(loss)` over the stack (the
members' batches stacked to (K, B, ...)), then one fused AdamW step over the members' own parameter tensors (each
stepped as its solo optimiser steps it: stepping the stacked tensors instead rounded a member's last elements
differently with K, since the kernel's vector tail moves).

Randomness stays per member: a loss draws its flow noise, times and dropout from the agent's generator
(`Agent.loss(batch, generator)`), and a draw inside vmap cannot come from K generators. So the draws are planned
once per batch shape (the loss is run once on a throwaway generator, recording each `torch.randn` / `rand` /
`randint` call), then every update draws them from each member's own generator in that order, exactly the calls
the member's solo update makes, and the loss inside vmap receives them in place of its own calls. A member's data
stream, initialisation and noise are therefore those of the same seed trained alone; what differs is the
arithmetic of the batched kernels (batched matrix products, PyTorch's GELU in place of the C one), so its numbers
agree with the solo run's to rounding at first and then diverge as runs on two CPUs do (tests/test_vectorised.py
measures both). A member's numbers do not depend on the group's size K on CPU (tested). Any other random
operation inside a loss is an error (vmap's randomness='error'), as is a draw that leaves the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap
from torch.overrides import TorchFunctionMode

from cfgrl.core.agent import Agent, adamw

# the random functions a loss may call with generator=..., each (func, its positional arguments) recorded by the plan
PLANNED_DRAWS = (torch.randn, torch.rand, torch.randint)
Draw = tuple[Any, tuple[Any, ...], dict[str, Any]]  # (func, args, kwargs without the generator) of one planned draw


class VectorisationError(RuntimeError):
    """A method's loss cannot be trained vectorised (a random draw or an operation vmap cannot batch)."""


class _Recorder(TorchFunctionMode):
    """Records each planned draw of a loss run (func, args, kwargs without the generator) and lets it run."""

    def __init__(self) -> None:
        super().__init__()
        self.draws: list[Draw] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in PLANNED_DRAWS:
            if "generator" not in kwargs:
                raise VectorisationError(f"the loss calls {func.__name__} without a generator")
            self.draws.append((func, tuple(args), {k: v for k, v in kwargs.items() if k != "generator"}))
        return func(*args, **kwargs)


class _Replayer(TorchFunctionMode):
    """Inside vmap: answers the loss's planned draws, in order, with the members' pre-drawn tensors."""

    def __init__(self, plan: list[Draw], drawn: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.plan, self.drawn, self.next = plan, drawn, 0

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in PLANNED_DRAWS:
            return func(*args, **kwargs)
        i = self.next
        planned = self.plan[i] if i < len(self.plan) else None
        seen = (func, tuple(args), {k: v for k, v in kwargs.items() if k != "generator"})
        if planned is None or planned[0] is not func or planned[1] != seen[1] or planned[2] != seen[2]:
            raise VectorisationError(f"random draw {i} of the loss ({func.__name__}{tuple(args)}) is not the one "
                                     "planned: the loss's draws depend on more than the batch shapes")
        self.next += 1
        return self.drawn[i]


class _Loss(nn.Module):
    """The agent's loss as a module call, so torch.func.functional_call can run it on stacked parameters."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.agent.loss(batch, generator)


class StackedAgents:
    """K agents (same class and config, each built from its own seed) stepped as one batched update.

    `update(batches)`: batches, one dict of (B, ...) tensors per member, -> one info dict per member (detached
    scalars), after one optimiser step of every member; `agent.step` advances for each. The group's one AdamW
    steps the members' own parameters (views of the stack), per tensor as each member's solo optimiser does, and
    shares its per-parameter state with the members' optimisers, so `agent.full_state()` holds the member's own
    AdamW state and a checkpoint resumes in either mode. Build it after the members resumed.
    """

    def __init__(self, agents: Sequence[Agent]) -> None:
        if len(agents) < 1:
            raise ValueError("a vectorised group needs at least one agent")
        first = agents[0]
        if any(type(a) is not type(first) or a.config != first.config or a.step != first.step for a in agents):
            raise ValueError("a vectorised group's agents must share their class, config and step")
        if first.config.precision != "fp32":
            raise VectorisationError(f"precision {first.config.precision!r} cannot train vectorised (autocast inside "
                                     "vmap fails in the backward pass); use fp32")
        self.agents = list(agents)
        self.config = first.config
        self.own = [dict(a.named_parameters()) for a in agents]  # name -> the member's Parameter
        self.trainable = [n for n, q in self.own[0].items() if q.requires_grad]
        with torch.no_grad():
            self.stacked = {n: torch.stack([own[n].detach() for own in self.own]) for n in self.own[0]}
            for k, own in enumerate(self.own):  # each agent now reads (and its state dict writes) its slice
                for n, q in own.items():
                    q.data = self.stacked[n][k]
            # buffers (a fixed log-std, say) never change in training: stacked once, passed in beside the parameters
            buffers = [dict(a.named_buffers()) for a in agents]
            self.buffers = {n: torch.stack([b[n] for b in buffers]) for n in buffers[0]}
        members = [[own[n] for n in self.trainable] for own in self.own]
        self.optimizer = adamw([q for mine in members for q in mine], self.config, first.device)
        for a, mine in zip(agents, members, strict=True):
            solo = a.optimizer
            params = solo.param_groups[0]["params"] if solo is not None else []
            if solo is None or len(params) != len(mine) or any(p is not q for p, q in zip(params, mine, strict=False)):
                raise VectorisationError(f"{type(a).__name__}'s optimiser does not step exactly its trainable "
                                         "parameters (a shared critic?); a vectorised group cannot step it")
            for q in mine:  # one state entry per parameter, seen by both optimisers (a resumed member's included)
                self.optimizer.state[q] = solo.state[q]
        # the vmapped function's parameter inputs, fixed for the group's life (the stacked tensors change in place)
        self._trainable = {n: self.stacked[n] for n in self.trainable}
        self._frozen = {**{n: t for n, t in self.stacked.items() if n not in self._trainable}, **self.buffers}
        self._loss = _Loss(first)
        self._current_plan: list[Draw] = []
        self._plans: dict[tuple[Any, ...], list[Draw]] = {}
        self._step = vmap(grad_and_value(self._member_loss, has_aux=True), randomness="error")

    def _member_loss(self, trainable: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                     batch: dict[str, torch.Tensor], drawn: list[torch.Tensor]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One member's loss on its parameters (trainable, and frozen ones and buffers), batch and pre-drawn
        randomness (called inside vmap, the current plan in `self._current_plan`)."""
        params = {f"agent.{n}": t for n, t in {**trainable, **frozen}.items()}
        with _Replayer(self._current_plan, drawn):
            loss, info = functional_call(self._loss, params, (batch, self.agents[0].generator), strict=True)
        return loss.float(), info

    def plan(self, batch: dict[str, torch.Tensor]) -> list[Draw]:
        """The loss's random draws for a member batch of these shapes (recorded once per shape on a throwaway
        generator, on member 0's parameters, without gradients)."""
        key = tuple((k, tuple(v.shape), v.dtype) for k, v in batch.items())
        if key not in self._plans:
            recorder = _Recorder()
            scratch = torch.Generator(device=self.agents[0].device).manual_seed(0)
            with torch.no_grad(), recorder:
                self.agents[0].loss(batch, scratch)
            self._plans[key] = recorder.draws
        return self._plans[key]

    def update(self, batches: Sequence[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """One optimiser step of every member on its own batch; returns each member's metrics."""
        if len(batches) != len(self.agents):
            raise ValueError(f"{len(batches)} batches for {len(self.agents)} members")
        stacked_batch = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
        try:
            plan = self.plan(batches[0])
            # each member's draws from its own generator, in its solo update's order
            drawn = [torch.stack([func(*args, **kwargs, generator=a.generator) for a in self.agents])
                     for func, args, kwargs in plan]
            self._current_plan = plan
            grads, (_, info) = self._step(self._trainable, self._frozen, stacked_batch, drawn)
        except RuntimeError as err:
            if isinstance(err, VectorisationError) or "vmap" in str(err) or "Batching rule" in str(err):
                raise VectorisationError(f"{type(self.agents[0]).__name__} cannot train vectorised: "
                                         f"{str(err).splitlines()[0]}") from err
            raise
        for n, g in grads.items():
            for k, own in enumerate(self.own):
                own[n].grad = g[k]
        for a in self.agents:
            a.before_step()  # target networks (views of the stack) move from the pre-step parameters
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for a in self.agents:
            a.step += 1
        return [{k: v[i] for k, v in info.items()} for i in range(len(self.agents))]
