"""Repository-level pytest configuration.

The example notebooks are executed by the test suite (nbmake); ``GANTK_NB_SMALL=1`` makes
them use small sizes so they run in CI time. The notebook kernels inherit this variable.
"""

import os

os.environ.setdefault("GANTK_NB_SMALL", "1")
