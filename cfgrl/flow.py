"""Flow matching (rectified flow) for actions, and the classifier-free-guided Euler sampler.

Convention: a0 ~ N(0, I) is noise at t = 0, the data action a1 sits at t = 1,
a_t = (1 - t) a0 + t a1, and the network regresses the constant velocity a1 - a0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# velocity_fn(a_t (B, A), t (B, 1)) -> (v_cond (B, A), v_null (B, A))
GuidedVelocity = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def flow_matching_pair(
    actions: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw the noisy input and target of the flow-matching loss.

    actions (B, A) -> a_t (B, A), t (B, 1), target velocity (B, A).
    """
    noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
    t = torch.rand((actions.shape[0], 1), generator=generator, device=actions.device, dtype=actions.dtype)
    a_t = (1.0 - t) * noise + t * actions
    return a_t, t, actions - noise


def flow_matching_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample squared error summed over action dims then averaged (B, A), (B, A) -> (B,)."""
    return ((predicted - target) ** 2).mean(dim=-1)


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
