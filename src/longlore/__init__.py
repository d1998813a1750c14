"""longlore: ten recent LLM research systems in one PyTorch + transformers codebase."""

import os as _os

# Idle OpenMP workers spin by default; on a shared or oversubscribed CPU machine (CI runners,
# laptops running several jobs) that made a SmolLM2 generation 15x slower here (84 s vs 5.6 s).
# PASSIVE lets them sleep. It must be set before torch loads OpenMP, so longlore sets it on import
# unless the user chose a policy; import longlore before torch to benefit.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
