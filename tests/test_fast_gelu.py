"""The C tanh-GELU (cfgrl/core/fast_gelu.py): the same function as PyTorch's to float rounding, the same bits on
every instruction set, used only where it applies, and PyTorch's kernel where it cannot be built."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from cfgrl.core import fast_gelu
from cfgrl.core.nets import mlp

needs_c_kernel = pytest.mark.skipif(fast_gelu.state()["kernel"] != "c",
                                    reason=f"no C kernel here: {fast_gelu.state().get('reason')}")


def _inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    specials = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 5.0, -5.0, 9.0, -9.0, 30.0, -30.0, 1e4, -1e4])
    return torch.cat([3 * torch.randn(100_003, generator=g), torch.linspace(-20, 20, 40_001), specials])


def _exact(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


@needs_c_kernel
def test_forward_and_backward_agree_with_the_exact_function_and_with_pytorch():
    x = _inputs()
    y = fast_gelu.gelu_tanh(x)
    scale = x.double().abs().clamp(min=1.0)  # float32 rounding of values of this size
    assert ((y.double() - _exact(x)).abs() / scale).max() < 1e-6
    assert ((y - F.gelu(x, approximate="tanh")).double().abs() / scale).max() < 1e-6

    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    leaf = x.clone().requires_grad_(True)
    (grad_c,) = torch.autograd.grad(fast_gelu.gelu_tanh(leaf), leaf, grad_out)
    leaf64 = x.double().requires_grad_(True)
    (grad_exact,) = torch.autograd.grad(_exact(leaf64), leaf64, grad_out.double())
    (grad_aten,) = torch.autograd.grad(F.gelu(leaf, approximate="tanh"), leaf, grad_out)
    gscale = grad_out.double().abs().clamp(min=1.0) * scale
    assert ((grad_c.double() - grad_exact).abs() / gscale).max() < 3e-6
    assert ((grad_c - grad_aten).double().abs() / gscale).max() < 3e-6


@needs_c_kernel
def test_no_denormal_leaves_the_kernel_and_nan_propagates():
    x = torch.cat([torch.linspace(-200, 200, 100_001), torch.tensor([float("nan")])])
    y = fast_gelu.gelu_tanh(x)
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fast_gelu.gelu_tanh(leaf), leaf, torch.full_like(x, 1e-30))
    tiny = torch.finfo(torch.float32).tiny
    for out in (y[:-1], grad[:-1]):
        assert not ((out != 0) & (out.abs() < tiny)).any()
    assert y[-1].isnan() and grad[-1].isnan()


@needs_c_kernel
def test_the_bits_do_not_depend_on_the_instruction_set(tmp_path):
    """The library's clones (AVX-512 or AVX2 + FMA on x86-64, chosen at load) and a build without clones
    (baseline x86-64, software fmaf) give identical outputs, odd lengths included (the vector loop's tail)."""
    plain = fast_gelu.load_library(fast_gelu.compile_library(tmp_path, defines=("CFGRL_NO_CLONES",)))
    clones = fast_gelu._loaded()[0]
    x = _inputs()[:77_777]
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    assert clones is not None
    outs = []
    for lib in (plain, clones):
        y, g = torch.empty_like(x), torch.empty_like(x)
        lib.cfgrl_gelu_tanh_forward(x.data_ptr(), y.data_ptr(), x.numel())
        lib.cfgrl_gelu_tanh_backward(x.data_ptr(), grad_out.data_ptr(), g.data_ptr(), x.numel())
        outs.append((y, g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    # and a row's value does not depend on the rows around it (the evaluation's batch independence)
    assert torch.equal(fast_gelu.gelu_tanh(x[5:6]), outs[1][0][5:6])


@needs_c_kernel
def test_pytorch_kernel_where_the_c_kernel_does_not_apply():
    x = torch.randn(64, 32, dtype=torch.float64)
    assert torch.equal(fast_gelu.gelu_tanh(x), F.gelu(x, approximate="tanh"))  # float64
    xb = torch.randn(64, 32).bfloat16()
    assert torch.equal(fast_gelu.gelu_tanh(xb), F.gelu(xb, approximate="tanh"))  # bf16 (autocast)
    xt = torch.randn(32, 64).t()  # not contiguous: the same values as its contiguous copy
    assert torch.equal(fast_gelu.gelu_tanh(xt), fast_gelu.gelu_tanh(xt.contiguous()))
    # torch.func transforms (the per-sample gradient norms) go to PyTorch's kernel
    net = mlp(4, (16,), 1)
    params = dict(net.named_parameters())
    batch = torch.randn(8, 4)

    def loss(p, row):
        return torch.func.functional_call(net, p, (row[None],)).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, batch)
    for i in range(len(batch)):
        net.zero_grad()
        loss(params, batch[i]).backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad, rtol=1e-5, atol=1e-6)


def _state_in_subprocess(env: dict[str, str]) -> str:
    code = "from cfgrl.core import fast_gelu; print(fast_gelu.state())"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True).stdout


def test_aten_when_asked_or_without_a_compiler(tmp_path):
    assert "'kernel': 'aten'" in _state_in_subprocess({"CFGRL_GELU": "aten"})
    no_compiler = _state_in_subprocess({"CC": str(tmp_path / "no-such-cc"), "CFGRL_CACHE_DIR": str(tmp_path)})
    assert "'kernel': 'aten'" in no_compiler and "no C compiler" in no_compiler
    bad = subprocess.run([sys.executable, "-c", "from cfgrl.core import fast_gelu; fast_gelu.state()"],
                         env={**os.environ, "CFGRL_GELU": "fast"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "CFGRL_GELU: must be one of c, aten, got 'fast'" in bad.stderr


def test_the_activation_module_is_the_tanh_gelu_and_keeps_state_dicts():
    net = mlp(3, (8, 8), 2)
    assert isinstance(net[1], fast_gelu.TanhGELU)
    old = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(8, 8),
                              torch.nn.GELU(approximate="tanh"), torch.nn.Linear(8, 2))
    net.load_state_dict(old.state_dict())
    x = torch.randn(5, 3)
    torch.testing.assert_close(net(x), old(x), rtol=1e-6, atol=1e-6)
