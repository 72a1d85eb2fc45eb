"""cfgrl: classifier-free guidance as a policy improvement operator, reproduced in PyTorch."""

from cfgrl import cpu_kernels as _cpu_kernels

_cpu_kernels.pin()  # first, before numpy and torch load: the same numbers on AVX-512 and AVX2 CPUs (see the module)

__version__ = "0.1.0"
