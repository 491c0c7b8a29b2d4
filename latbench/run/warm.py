"""Imported by the worker forkserver (run/workers.py) before it forks any worker: torch's lazily
imported modules (the FLOP counter, sympy: about a second) are loaded once in the server, so each
worker starts with them instead of importing them again. Touches no device and runs no parallel region."""

from latbench.run.pipeline import import_lazy_modules

import_lazy_modules()
