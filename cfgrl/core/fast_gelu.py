"""The tanh-approximate GELU (flax's nn.gelu, every method's default activation) as one C loop on CPU.

PyTorch's CPU kernel for `gelu(approximate='tanh')` spends most of its time in tanh: at the default network size
(a 256 x 256 activation, 1 thread, this project's Intel Xeon) 108 us forward and 117 us backward, a third of a
flow-policy update. `gelu_tanh.c` computes the same function as x / (1 + exp(-2u)) in one pass (29 / 38 us), and
the activation module `TanhGELU` uses it for float32 CPU tensors; everything else (CUDA, other dtypes, autocast's
bf16, torch.func transforms, torch.compile tracing) goes to PyTorch's kernel.

The two kernels agree to float rounding (tests/test_fast_gelu.py: within 1e-6 of each other and of the float64
function), so results computed with one differ in their last bits from results with the other, and training
diverges from there as on another CPU. The C kernel's bits do not depend on the CPU (every step is an IEEE
operation; its AVX-512, AVX2 and plain builds agree). Below the float32 normal range it returns 0 where the exact
function is a denormal.

The library is compiled on first use with the C compiler ($CC, else `cc`; about 0.3 s) into a cache folder
($CFGRL_CACHE_DIR, else $XDG_CACHE_HOME/cfgrl, else ~/.cache/cfgrl), one file per source, compiler and machine,
written atomically (parallel jobs may both compile; one file wins). Without a compiler, on an x86-64 CPU without
AVX2 and FMA, or with CFGRL_GELU=aten, PyTorch's kernel is used. `state()` says which and why; every result file's
provenance records it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cfgrl import cpu_kernels

SOURCE = Path(__file__).with_name("gelu_tanh.c")
FLAGS = ("-O3", "-shared", "-fPIC", "-fno-math-errno", "-ffp-contract=off")
ISA_NAMES = {2: "avx512f", 1: "avx2+fma", 0: "plain"}
_INT64 = ctypes.c_int64


def requested_kernel() -> str:
    """The kernel CFGRL_GELU asks for: 'c' (default) or 'aten'; another value is a ValueError naming the variable
    (cfgrl.cpu_kernels.SettingError; the Snakefile checks it before any job runs)."""
    return cpu_kernels.requested_gelu()


def cache_dir() -> Path:
    """Where compiled kernels are kept: $CFGRL_CACHE_DIR, else $XDG_CACHE_HOME/cfgrl, else ~/.cache/cfgrl."""
    if os.environ.get("CFGRL_CACHE_DIR"):
        return Path(os.environ["CFGRL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cfgrl"


def compile_library(out_dir: Path, defines: tuple[str, ...] = ()) -> Path:
    """Compile gelu_tanh.c into out_dir (named by a hash of source, compiler, flags and machine; reused when there)
    and return the library's path. `defines` (e.g. ('CFGRL_NO_CLONES',)) are passed as -D. Raises OSError or
    subprocess.CalledProcessError when there is no working compiler."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise FileNotFoundError(f"no C compiler ({os.environ.get('CC', 'cc')!r} not found)")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    flags = (*FLAGS, *(f"-D{d}" for d in defines))
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), version.encode(), " ".join(flags).encode(),
                                    platform.machine().encode()])).hexdigest()[:16]
    path = out_dir / f"libcfgrl_gelu_{key}.so"
    if path.exists():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        subprocess.run([compiler, *flags, "-o", tmp, str(SOURCE), "-lm"], check=True, capture_output=True,
                       text=True, timeout=120)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_library(path: Path) -> ctypes.CDLL:
    """The compiled kernels with their argument types set."""
    lib = ctypes.CDLL(str(path))
    lib.cfgrl_gelu_tanh_forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, _INT64]
    lib.cfgrl_gelu_tanh_forward.restype = None
    lib.cfgrl_gelu_tanh_backward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, _INT64]
    lib.cfgrl_gelu_tanh_backward.restype = None
    lib.cfgrl_gelu_isa.restype = ctypes.c_int
    return lib


@functools.cache
def _loaded() -> tuple[ctypes.CDLL | None, dict[str, Any]]:
    """(the library or None, the state record), once per process."""
    if requested_kernel() == "aten":
        return None, {"kernel": "aten", "reason": f"{cpu_kernels.GELU_VARIABLE}=aten"}
    try:
        path = compile_library(cache_dir())
    except (OSError, subprocess.SubprocessError) as err:
        try:  # a cache folder we cannot write: compile into a private temporary one
            path = compile_library(Path(tempfile.gettempdir()) / f"cfgrl-{os.getuid()}")
        except (OSError, subprocess.SubprocessError):
            detail = getattr(err, "stderr", None) or err
            return None, {"kernel": "aten", "reason": f"no compiled kernel: {str(detail).strip()[:200]}"}
    lib = load_library(path)
    isa = int(lib.cfgrl_gelu_isa())
    if isa == 0:
        return None, {"kernel": "aten", "reason": "CPU without AVX2 and FMA"}
    return lib, {"kernel": "c", "isa": ISA_NAMES[isa]}


def state() -> dict[str, Any]:
    """{'kernel': 'c' | 'aten', 'isa': the clone in use (c) or 'reason' (aten)}: recorded in every provenance."""
    return dict(_loaded()[1])


def _forward(lib: ctypes.CDLL, x: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(x)
    lib.cfgrl_gelu_tanh_forward(x.data_ptr(), y.data_ptr(), x.numel())
    return y


class _TanhGELUFunction(torch.autograd.Function):
    """gelu on a contiguous float32 CPU tensor, forward and backward by the C kernels (x is saved)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lib: ctypes.CDLL) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lib = lib
        return _forward(lib, x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_in = torch.empty_like(x)
        ctx.lib.cfgrl_gelu_tanh_backward(x.data_ptr(), grad_out.data_ptr(), grad_in.data_ptr(), x.numel())
        return grad_in, None


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh-approximate GELU of x (any shape): the C kernel where it applies (see the module), else PyTorch's."""
    lib = _loaded()[0]
    if (lib is None or x.device.type != "cpu" or x.dtype != torch.float32 or torch.compiler.is_compiling()
            or torch._C._functorch.is_functorch_wrapped_tensor(x)):
        return F.gelu(x, approximate="tanh")
    x = x.contiguous()
    if x.requires_grad and torch.is_grad_enabled():
        return _TanhGELUFunction.apply(x, lib)  # type: ignore[no-untyped-call,no-any-return]
    return _forward(lib, x)


class TanhGELU(nn.Module):
    """nn.GELU(approximate='tanh') with the C kernel on CPU (`gelu_tanh`); no parameters, so state dicts of
    networks built with nn.GELU load unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh(x)
