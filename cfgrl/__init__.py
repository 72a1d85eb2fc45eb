"""cfgrl: classifier-free guidance as a policy improvement operator, reproduced in PyTorch."""

from cfgrl import cpu_kernels as _cpu_kernels

try:
    _cpu_kernels.pin()  # first, before numpy and torch load: the same numbers on AVX-512 and AVX2 CPUs (see the module)
except _cpu_kernels.SettingError as _err:  # a bad CFGRL_CPU_KERNELS: one line, not a traceback, before anything runs
    raise SystemExit(f"error: {_err}") from None

__version__ = "0.1.0"
