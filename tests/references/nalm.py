"""Float64 NumPy references of the NALM equations, written from the papers, not the package.

Products over the input axis are explicit loops, so they do not share the package's
``reduce_prod`` formulation.
"""
import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))  # no overflow for large |z|


def nac_weight(w_hat, m_hat):
    return np.tanh(w_hat) * sigmoid(m_hat)


def inalu(x, w_hat_a, m_hat_a, w_hat_m, m_hat_m, g, epsilon=1e-7, omega=20.0):
    """iNALU as the authors implement it (max with ε, ω clip of the exponent, msv clip)."""
    x = np.asarray(x, np.float64)
    w_a = nac_weight(w_hat_a, m_hat_a)
    w_m = nac_weight(w_hat_m, m_hat_m)
    a = x @ w_a
    m = np.exp(np.minimum(np.log(np.maximum(np.abs(x), epsilon)) @ w_m, omega))
    msv = np.ones(x.shape[:-1] + (w_m.shape[1],))
    for i in range(x.shape[-1]):
        msv = msv * (np.sign(x[..., i:i + 1]) * np.abs(w_m[i]) + 1.0 - np.abs(w_m[i]))
    msv = np.clip(msv, -1.0, 1.0)
    gate = sigmoid(g)
    return gate * a + (1.0 - gate) * m * msv


def inalu_regularizer(variables, t=20.0):
    """(1/t) Σ_w mean(max(min(−w, w) + t, 0)), report eq. 2.14–2.15."""
    total = 0.0
    for w in variables:
        w = np.asarray(w, np.float64)
        total += np.mean(np.maximum(np.minimum(-w, w) + t, 0.0))
    return total / t


def nalu(x, w_hat, m_hat, g, epsilon=1e-7):
    """Trask et al.: shared W, log(|x| + ε) path, gate σ(x G)."""
    x = np.asarray(x, np.float64)
    w = nac_weight(w_hat, m_hat)
    a = x @ w
    m = np.exp(np.log(np.abs(x) + epsilon) @ w)
    gate = sigmoid(x @ g)
    return gate * a + (1.0 - gate) * m


def nac(x, w_hat, m_hat):
    return np.asarray(x, np.float64) @ nac_weight(w_hat, m_hat)


def nac_multiplicative(x, w_hat, m_hat, epsilon=1e-7):
    return np.exp(np.log(np.abs(np.asarray(x, np.float64)) + epsilon) @ nac_weight(w_hat, m_hat))


def nau(x, w):
    return np.asarray(x, np.float64) @ np.clip(w, -1.0, 1.0)


def nmu(x, w):
    x = np.asarray(x, np.float64)
    w = np.clip(w, 0.0, 1.0)
    out = np.ones(x.shape[:-1] + (w.shape[1],))
    for i in range(x.shape[-1]):
        # (1 − W) + W x, so that W = 1 gives x exactly (no 1 + x − 1 rounding)
        out = out * ((1.0 - w[i]) + w[i] * x[..., i:i + 1])
    return out


def nau_regularizer(w, step, scale, start, end):
    w = np.clip(np.asarray(w, np.float64), -1.0, 1.0)
    lam = scale * (float(step >= start) if end == start
                   else min(max((step - start) / (end - start), 0.0), 1.0))
    return lam * np.mean(np.minimum(np.abs(w), 1.0 - np.abs(w)))


def nmu_regularizer(w, step, scale, start, end):
    w = np.clip(np.asarray(w, np.float64), 0.0, 1.0)
    lam = scale * (float(step >= start) if end == start
                   else min(max((step - start) / (end - start), 0.0), 1.0))
    return lam * np.mean(np.minimum(w, 1.0 - w))


def sparsity_error(*matrices):
    """Madsen & Johansen: max over weights of min(|W|, |1 − |W||)."""
    return max(float(np.max(np.minimum(np.abs(w), np.abs(1.0 - np.abs(w))))) for w in matrices)


def hard_inputs(rng, rows, cols):
    """Inputs with zeros, negatives, tiny values (where max(|x|, ε) ≠ |x| + ε) and ±1e6."""
    x = rng.uniform(-5.0, 5.0, (rows, cols))
    special = np.array([0.0, -0.0, 1e-7, -3e-8, 2e-7, -1.0, 1e6, -1e6, 5e5, -2.5])
    for r in range(rows):
        k = rng.integers(0, cols + 1)
        cols_idx = rng.choice(cols, size=k, replace=False)
        x[r, cols_idx] = rng.choice(special, size=k)
    x[0] = 0.0
    x[1] = 1e6
    x[2] = -1e6
    return x
