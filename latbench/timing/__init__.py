"""Timing: device backends that time a block of calls, and the device-agnostic measurement loop."""

from latbench.timing.backend import TimingBackend
from latbench.timing.loop import StopPolicy, measure

__all__ = ["StopPolicy", "TimingBackend", "measure"]
