"""numba kernels of :mod:`periscope.pricing`, one module per model. Private."""
