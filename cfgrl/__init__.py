"""cfgrl: classifier-free guidance as a policy improvement operator, reproduced in PyTorch."""

__version__ = "0.1.0"
