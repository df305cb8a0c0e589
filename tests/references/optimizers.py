"""NumPy re-implementations of Keras 3's SGD (with momentum) and Adam steps in fixed point.

Written from the optimizers' published update rules (Keras 3 documents them)
and the wrapper's documented semantics, not from its code: the gradient is
rounded to its format, each state write to its format, and the step added to
the stored weight is rounded to the update format, the sum to the storage
format. float32 arithmetic in Keras' order of operations.
"""
import numpy as np

from references.fixed_point import quantize_reference


F = np.float32


def q(x, fmt):
    return x if fmt is None else quantize_reference(np.asarray(x, F), fmt)


def store(w, delta, update=None, storage=None):
    """The fused update: (new weight, requested delta, the delta that was added)."""
    added = q(delta, update)
    return q(F(w) + added, storage), delta, added


def sgd_momentum_step(w, m, g, lr, momentum, formats):
    """Keras SGD(momentum): m = m * momentum - g * lr; w += m (nesterov=False)."""
    g = q(g, formats.get("gradient"))
    m = q(m * F(momentum) - g * F(lr), formats.get("momentum"))
    w, _, _ = store(w, m, formats.get("update"), formats.get("storage"))
    return w, m


def adam_step(w, m, v, g, lr, t, formats, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras Adam at iteration t (0-based): bias correction folded into alpha."""
    g = q(g, formats.get("gradient"))
    step = F(t + 1)
    alpha = F(lr) * np.sqrt(F(1) - F(beta_2) ** step) / (F(1) - F(beta_1) ** step)
    m = q(m + (g - m) * F(1 - beta_1), formats.get("momentum"))
    v = q(v + (g * g - v) * F(1 - beta_2), formats.get("second_moment"))
    w, _, _ = store(w, -((m * alpha) / (np.sqrt(v) + F(epsilon))), formats.get("update"),
                    formats.get("storage"))
    return w, m, v
