"""jit: staging a function into an IR, replayed fast.  (Being built: until the
staging trace lands, jit runs the function eagerly with the same signature.)"""
import functools


def jit(f=None, *, static_argnums=(), static_argnames=(), donate_argnums=()):
    if f is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames,
                                 donate_argnums=donate_argnums)
    return f
