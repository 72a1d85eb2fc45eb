"""Flow matching (rectified flow) for actions: the training pair and loss, the velocity network, and the
classifier-free-guided Euler sampler every flow policy samples with.

Convention: a0 ~ N(0, I) is noise at t = 0, the data action a1 sits at t = 1,
a_t = (1 - t) a0 + t a1, and the network regresses the constant velocity a1 - a0.

Guidance convention (the paper's): v = v_null + w (v_cond - v_null), so w = 0 samples the unconditional policy,
w = 1 the conditional one and w > 1 extrapolates past it. Libraries that write v = v_cond + s (v_cond - v_null)
(e.g. some diffusion toolkits' "guidance scale") use s = w - 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cfgrl.core.nets import check_choice, mlp

TIME_EMBEDDINGS = ("scalar", "sinusoidal")  # how the velocity network sees t: one raw input, or sin/cos features
# velocity_fn(a_t (B, A), t (B, 1)) -> (v_cond (B, A), v_null (B, A))
GuidedVelocity = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def flow_pair(actions: torch.Tensor, generator: torch.Generator, time_grid: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The flow-matching input a_t, time t (B, 1) and target velocity for data actions (B, A).

    Draws the noise a0 (B, A), then t: time_grid 0: t ~ U[0, 1] (the OGBench code); time_grid N > 0: t uniform on
    the N + 1 grid points {0, 1/N, ..., 1} (the ExORL code with N = 32; sample with flow_steps = N so the sampler
    visits the same grid). a_t = (1 - t) a0 + t a, target velocity a - a0.
    """
    noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
    if time_grid <= 0:
        t = torch.rand((actions.shape[0], 1), generator=generator, device=actions.device, dtype=actions.dtype)
    else:
        t = torch.randint(0, time_grid + 1, (actions.shape[0], 1), generator=generator, device=actions.device)
        t = t.to(actions.dtype) / time_grid
    return (1.0 - t) * noise + t * actions, t, actions - noise



def flow_matching_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample squared error averaged over action dims: (B, A), (B, A) -> (B,); its batch mean is the
    reference's jnp.mean((pred - vel) ** 2)."""
    return ((predicted - target) ** 2).mean(dim=-1)


def drop_to_null(conditions: torch.Tensor, null: torch.Tensor, p: float, generator: torch.Generator
                 ) -> torch.Tensor:
    """Classifier-free training dropout: each row of `conditions` (B, D) replaced by the learned `null` (D,) with
    probability p (one uniform draw per row from `generator`)."""
    drop = torch.rand(conditions.shape[0], 1, generator=generator, device=conditions.device) < p
    return torch.where(drop, null.expand_as(conditions), conditions)


def guide(v_cond: torch.Tensor, v_null: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance v = v_null + w (v_cond - v_null), written so that w = 0 returns
    v_null and w = 1 returns v_cond bit for bit. v_* (B, A), w (B, 1) or scalar."""
    return (1.0 - w) * v_null + w * v_cond


def guided_euler_sample(
    velocity: GuidedVelocity,
    noise: torch.Tensor,
    w: torch.Tensor,
    steps: int,
    clip: float | None = 1.0,
) -> torch.Tensor:
    """Integrate the guided velocity from t = 0 (noise (B, A)) to t = 1 with `steps` Euler steps.

    w: (B,) guidance weight per row. Returns actions (B, A), clipped to [-clip, clip] when clip is set.
    """
    if steps < 1:
        raise ValueError("flow steps must be >= 1")
    a = noise
    w_col = w.reshape(-1, 1).to(noise.dtype)
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((a.shape[0], 1), i * dt, device=a.device, dtype=a.dtype)
        v_cond, v_null = velocity(a, t)
        a = a + guide(v_cond, v_null, w_col) * dt
    if clip is not None:
        a = a.clamp(-clip, clip)
    return a


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
        check_choice(time_embedding, TIME_EMBEDDINGS, "time_embedding")
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
        out: torch.Tensor = self.net(torch.cat([cond, a_t, t], dim=-1))
        return out


MIN_ROWS = 16  # CUDA: a network call on fewer rows is padded to this many (see `row_stable`)
ROW_BLOCK = 64  # CPU: every network call runs on blocks of exactly this many rows (see `row_stable`)


def row_stable(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """fn(*inputs) on row batches (B, ...), computed so that each output row depends on its own input row only,
    not on the batch size or on the row's place in the batch. On CPU the rows run in blocks of exactly ROW_BLOCK
    rows (the last block padded by repeating its last row, then cut back): MKL's matrix products round a row
    differently by the number of rows and the row's place in the last, partial block (measured on AMD EPYC: 1-3
    rows; on an Intel Xeon with AVX-512: e.g. row 32 of 33, row 300 of 301 of a 256 -> 2 layer), and vectorised
    activations treat the tail of a tensor apart; with one block shape every call takes the same kernels for
    every row (tests/test_evaluate_engine.py checks random subsets and orders at the default network sizes).
    Evaluation relies on it: an episode's actions are the same whether it runs alone or beside others, whatever
    w they use, and as the batch shrinks when episodes end. CUDA (not bit-exact anyway): padded to MIN_ROWS."""
    b = inputs[0].shape[0]
    on_cpu = inputs[0].device.type == "cpu"
    if b == 0 or (not on_cpu and b >= MIN_ROWS):
        return fn(*inputs)
    block = ROW_BLOCK if on_cpu else MIN_ROWS  # CUDA gets here with b < MIN_ROWS: one padded block
    blocks = []
    for start in range(0, b, block):
        part = [x[start:start + block] for x in inputs]
        n = part[0].shape[0]
        if n < block:
            part = [torch.cat([x, x[-1:].expand(block - n, *x.shape[1:])]) for x in part]
        blocks.append(fn(*part)[:n])
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


def flow_act(net: FlowVelocity, cond: torch.Tensor, null_cond: torch.Tensor | None, w: torch.Tensor | float,
             generator: torch.Generator, steps: int, action_dim: int, clip: float | None = 1.0,
             noise: torch.Tensor | None = None) -> torch.Tensor:
    """Sample actions (B, A) in [-1, 1] by Euler-integrating v = v(null) + w (v(cond) - v(null)) from noise.

    cond, null_cond (B, C): the conditional and the null conditioning rows (null_cond None: unguided, v(cond)).
    w: scalar or (B,), each row its own weight. Each Euler step is one network pass over the branches the rows
    need: v(cond) for rows with w != 0, v(null) for rows with w != 1 (a row at w = 0 or 1 needs one branch: the
    guided velocity is then that branch's, bit for bit), so a batch of every w of a checkpoint computes what each
    w alone computes (row_stable: each row's velocity is independent of the batch).
    noise: the starting noise a0 (B, A); None draws it from `generator`. Evaluation passes each episode's own
    stream, so a row's actions do not depend on which other rows share its batch.
    clip: the samples are clipped to [-clip, clip]; None leaves them unclipped (e.g. subgoals of a hierarchical
    policy, which live in goal space, not the action box).
    """
    b = cond.shape[0]
    w = torch.as_tensor(w, dtype=cond.dtype, device=cond.device).expand(b)
    if null_cond is None:
        w = torch.ones_like(w)
        cond_rows, null_rows = torch.arange(b, device=cond.device), torch.zeros(0, dtype=torch.long,
                                                                                device=cond.device)
    else:
        cond_rows, null_rows = torch.nonzero(w != 0).squeeze(1), torch.nonzero(w != 1).squeeze(1)
    n_cond = len(cond_rows)
    # the conditioning of every network row, fixed over the Euler steps: the cond rows, then the null rows
    rows = torch.cat([cond_rows, null_rows])
    conditioning = cond[cond_rows] if null_cond is None else torch.cat([cond[cond_rows], null_cond[null_rows]])
    only_null, only_cond = w == 0, w == 1

    def velocity(a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = row_stable(net, conditioning, a[rows], t[rows])
        v_cond, v_null = torch.empty_like(a), torch.empty_like(a)
        v_cond[cond_rows], v_null[null_rows] = v[:n_cond], v[n_cond:]
        # a row with one branch: guide() then returns it (w = 0: v_null + 0 v_null, w = 1: 0 v_cond + v_cond)
        v_cond = torch.where(only_null[:, None], v_null, v_cond)
        v_null = torch.where(only_cond[:, None], v_cond, v_null)
        return v_cond, v_null

    if noise is None:
        noise = torch.randn((b, action_dim), generator=generator, device=cond.device, dtype=cond.dtype)
    return guided_euler_sample(velocity, noise.to(cond.dtype), w, steps, clip=clip)
