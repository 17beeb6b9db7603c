"""Solution to notebook 01's exercise: the effective learning rate of a branch whose inputs are scaled by s.

For out = (s x) w, the gradient is dL/dw = (s x)^T dout: one factor s. The step dw = -lr (s x)^T dout moves the
output by (s x) dw = -lr s^2 x x^T dout: a second factor s. On the unscaled inputs, a step with lr' moves the output
by -lr' x x^T dout. Equal when lr' = lr s^2.
"""


def effective_lr(lr, s):
    """lr: the learning rate used on inputs s * x; s: the input scale -> the equivalent learning rate on x."""
    return lr * s**2
