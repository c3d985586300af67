"""Distributions: stats.norm, as SciPy's (loc and scale broadcast)."""
import math

from ..numpy import elementwise as ew
from .special import log_ndtr, ndtr

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _standardize(x, loc, scale):
    return ew.divide(ew.subtract(x, loc), scale)


class _Norm:
    """The normal distribution with mean `loc` and standard deviation `scale`."""

    @staticmethod
    def logpdf(x, loc=0, scale=1):
        z = _standardize(x, loc, scale)
        return ew.subtract(ew.multiply(-0.5, ew.multiply(z, z)),
                           ew.add(ew.log(scale), _LOG_SQRT_2PI))

    @classmethod
    def pdf(cls, x, loc=0, scale=1):
        return ew.exp(cls.logpdf(x, loc, scale))

    @staticmethod
    def cdf(x, loc=0, scale=1):
        return ndtr(_standardize(x, loc, scale))

    @staticmethod
    def logcdf(x, loc=0, scale=1):
        return log_ndtr(_standardize(x, loc, scale))


norm = _Norm()
