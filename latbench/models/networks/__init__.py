"""Whole networks, in plain torch, for Table 8 of ShuffleNet V2 and the designs of the seed notes.

Importing this package registers them (`latbench list`); NETWORKS holds their builder names. They
take the input (3, resolution, resolution) from their `resolution` parameter, not from the suite's
`input`, and a suite must use `blocks: 1`.
"""

from latbench.models.networks._common import NETWORKS
from latbench.models.networks import shufflenet as _shufflenet  # noqa: F401,E402
from latbench.models.networks import mobilenet as _mobilenet  # noqa: F401,E402
from latbench.models.networks import classic as _classic  # noqa: F401,E402
from latbench.models.networks import efficient as _efficient  # noqa: F401,E402

__all__ = ["NETWORKS"]
