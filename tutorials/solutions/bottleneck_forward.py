"""Solution to notebook 05's first exercise: the reparameterised Gaussian bottleneck's forward pass.

    mu = h w_mu + b_mu;   sigma = softplus(h w_s + b_s - shift) + sigma_min;   z = mu + sigma * eps (training)
and z = mu in evaluation (eps is None). The softplus keeps sigma positive; the shift makes it start small.
"""

from mini_cal import layers as L


def bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    """h: (N, H); w_mu, w_s: (H, Z); b_mu, b_s: (Z,); eps: (N, Z) or None -> z, mu, sigma: (N, Z)."""
    mu = h @ w_mu + b_mu  # (N, Z)
    sigma = L.softplus(h @ w_s + b_s - shift) + sigma_min  # (N, Z)
    z = mu if eps is None else mu + sigma * eps
    return z, mu, sigma
