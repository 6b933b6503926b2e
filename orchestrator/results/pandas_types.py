"""How result tables become pandas frames: the Arrow types read as something other than pandas' default.
Its own module, free of the spec (and so of torch), for the readers that need nothing else (`status`)."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa

PANDAS_TYPES = {pa.int64(): pd.Int64Dtype()}   # nullable ints: 63-bit seeds must not pass through float64
