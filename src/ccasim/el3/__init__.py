"""EL3 firmware (the role TF-A's BL31 plays): SMC routing and the granule transition service."""

from ccasim.el3.monitor import Monitor

__all__ = ["Monitor"]
