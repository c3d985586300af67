"""Fitting a signal's spectrum: complex parameters, gnp.fft, JAX's gradient
convention.

A noisy complex signal is the sum of three damped oscillations
a_k exp((i w_k - d) t) with unknown complex amplitudes a_k, known
frequencies w_k and an unknown common damping d.  The model is fitted in the
frequency domain (the squared distance between its spectrum and the data's,
over the band that holds the oscillations) by gradient descent on the
complex a_k and the real d together.  For a real loss of complex parameters,
gp.grad returns dL/dx - i dL/dy (JAX's convention), the conjugate of the
steepest ascent: the step is a - lr * conj(grad).  Runs in seconds.

    python examples/spectrum_fit.py
"""
import time

import numpy as np

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads

N, DT = 256, 0.05
t = np.arange(N) * DT
W = 2 * np.pi * np.array([1.5, 3.0, 6.25])             # known angular frequencies
TRUE_A, TRUE_D = np.array([1.0 + 0.5j, -0.4 + 0.8j, 0.3 - 0.6j]), 0.35
rng = np.random.default_rng(0)
clean = (TRUE_A[:, None] * np.exp((1j * W[:, None] - TRUE_D) * t)).sum(0)
noisy = clean + 0.1 * (rng.standard_normal(N) + 1j * rng.standard_normal(N))
freqs = np.fft.fftfreq(N, DT)
band = gp.asarray((np.abs(freqs) < 8.0).astype(np.float64))   # where the signal lives
data_spectrum = gnp.fft.fft(gp.asarray(noisy), norm="ortho")
phase = gp.asarray(1j * W[:, None] * t)                 # i w_k t, shape (3, N)
times = gp.asarray(t)


def model(a, d):
    """The signal of amplitudes a (complex, (3,)) and damping d (real)."""
    return gnp.sum(a[:, None] * gnp.exp(phase - d * times), axis=0)


def loss(a, d):
    """Mean squared distance of the spectra inside the band (real)."""
    diff = gnp.fft.fft(model(a, d), norm="ortho") - data_spectrum
    return gnp.sum(band * gnp.real(diff * gnp.conj(diff))) / N


step = gp.jit(gp.value_and_grad(loss, argnums=(0, 1)))


def main():
    a, d = gp.asarray(np.zeros(3, np.complex128)), gp.asarray(1.0)
    check_grads(loss, (a + 0.1j, d), order=1)            # complex and real arguments
    start, lr = time.perf_counter(), 0.3
    for i in range(401):
        value, (ga, gd) = step(a, d)
        if i % 100 == 0:
            print(f"step {i:4d}  loss {float(value):.5f}  damping {float(d):.3f}")
        a, d = a - lr * gnp.conj(ga), d - lr * gd       # a: along the conjugate
    a_host = gp.to_numpy(a)
    print(f"fitted in {time.perf_counter() - start:.2f}s")
    print("amplitudes", np.round(a_host, 3), " true", TRUE_A)
    print(f"damping {float(d):.3f}  true {TRUE_D}")
    # the least-squares fit explains the noisy data at least as well as the truth
    assert float(loss(a, d)) <= float(loss(gp.asarray(TRUE_A), gp.asarray(TRUE_D)))
    assert np.abs(a_host - TRUE_A).max() < 0.1 and abs(float(d) - TRUE_D) < 0.05


if __name__ == "__main__":
    main()
