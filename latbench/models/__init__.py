"""Network builders: a registry of named block families (models/guidelines.py holds G1-G4)."""

from latbench.models.registry import REQUIRED, Builder, BuilderInfo, describe_builders, get_builder, list_builders

# Importing the families registers them.
from latbench.models import guidelines as _guidelines  # noqa: F401,E402
from latbench.models import designs as _designs  # noqa: F401,E402
from latbench.models import user as _user  # noqa: F401,E402
from latbench.models import networks as _networks  # noqa: F401,E402

__all__ = ["REQUIRED", "Builder", "BuilderInfo", "describe_builders", "get_builder", "list_builders"]
