"""tinyadv: adversarial metric learning against sensitivity and invariance attacks, in NumPy.

Every gradient is written by hand next to its forward pass and checked numerically.
See README.md and lessons/ for where to start.
"""
__version__ = "0.1.0"
