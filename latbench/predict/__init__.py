"""Latency prediction from measured building blocks (issue 25).

blocks.py cuts a network into fusion-aware blocks; measure.py measures the blocks a table lacks (and
networks whole, for calibration) through the run wing; table.py is the latency table, a versioned
results file for one machine; model.py predicts (sum of blocks x calibration, interval, breakdown);
api.py is what `latbench lut build`, `latbench predict` and `latbench.predict()` do.

The package is callable: `latbench.predict(model, *input_shape, table=...)` is api.predict (the
package keeps its submodules: latbench.predict.blocks, ...).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from latbench.predict.api import predict

        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
