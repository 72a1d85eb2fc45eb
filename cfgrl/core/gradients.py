"""Per-sample gradient norms: the paper's Fig. 2 diagnostic (how evenly a loss spreads its gradient over a batch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap


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
