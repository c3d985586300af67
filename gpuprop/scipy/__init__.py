"""gpuprop.scipy: differentiable counterparts of a few SciPy functions
(`special`, `stats.norm`), on the active backend.

The special functions without a closed form (erf, erfc, erfinv, gammaln,
digamma, log_ndtr) are computed by the backend's own implementation:
scipy.special on NumPy (the optional extra: pip install gpuprop[scipy]),
cupyx.scipy.special on CuPy, `xp.scipy.special` for a registered backend
whose namespace provides one.  The rest (expit, logit, logsumexp, xlogy,
xlog1py, norm.logpdf/pdf) are built from gpuprop.numpy and need no SciPy.
"""
from . import special, stats
