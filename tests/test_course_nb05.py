"""Notebook 05's checkers: each accepts its solution, reports a stub as unfinished, refuses the library's own
function, and tells typical wrong answers apart with different messages."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import nb05  # noqa: E402
from solutions.bottleneck_betas import bottleneck_betas  # noqa: E402
from solutions.bottleneck_forward import bottleneck_forward  # noqa: E402
from solutions.kl_backward import kl_backward  # noqa: E402
from solutions.kl_forward import kl_forward  # noqa: E402

from mini_cal import layers as L  # noqa: E402
from mini_cal.methods import cal  # noqa: E402


def stub(*args, **kwargs):
    raise NotImplementedError("write it")


def softplus(a):
    return np.logaddexp(0.0, a)


# ------------------------------------------------------------------------------------- wrong answers
def fwd_no_shift(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s) + sigma_min
    return (mu if eps is None else mu + sigma * eps), mu, sigma


def fwd_variance(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s - shift) + sigma_min
    return (mu if eps is None else mu + sigma**2 * eps), mu, sigma


def fwd_noise_in_eval(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s - shift) + sigma_min
    return mu + sigma * (eps if eps is not None else 1.0), mu, sigma


def fwd_hardcoded(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s - 5.0) + 1e-4
    return (mu if eps is None else mu + sigma * eps), mu, sigma


def fwd_unstable(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    with np.errstate(over="ignore"):
        mu, sigma = h @ w_mu + b_mu, np.log(1 + np.exp(h @ w_s + b_s - shift)) + sigma_min
    return (mu if eps is None else mu + sigma * eps), mu, sigma


def kl_sum_batch(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0)


def kl_mean_all(mu, sigma):
    return 0.5 * np.mean(mu**2 + sigma**2 - np.log(sigma**2) - 1.0)


def kl_no_half(mu, sigma):
    return np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0) / mu.shape[0]


def kl_log_sigma(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma) - 1.0) / mu.shape[0]


def kl_no_minus_one(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2)) / mu.shape[0]


def kl_per_sample(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0, axis=1)


def klb_no_n(dkl, cache):
    mu, sigma = cache
    return dkl * mu, dkl * (sigma - 1 / sigma)


def klb_no_dkl(dkl, cache):
    mu, sigma = cache
    return mu / len(mu), (sigma - 1 / sigma) / len(mu)


def klb_dkl_squared(dkl, cache):
    mu, sigma = cache
    return dkl**2 * mu / len(mu), dkl**2 * (sigma - 1 / sigma) / len(mu)


def klb_forgot_term(dkl, cache):
    mu, sigma = cache
    return dkl * mu / len(mu), dkl * sigma / len(mu)


def klb_sign(dkl, cache):
    mu, sigma = cache
    return -dkl * mu / len(mu), -dkl * (sigma - 1 / sigma) / len(mu)


def klb_log_sigma(dkl, cache):
    mu, sigma = cache
    return dkl * mu / len(mu), dkl * (sigma - 0.5 / sigma) / len(mu)


def klb_plus(dkl, cache):
    mu, sigma = cache
    return dkl * mu / len(mu), dkl * (sigma + 1 / sigma) / len(mu)


def klb_twice_mu(dkl, cache):
    mu, sigma = cache
    return 2 * dkl * mu / len(mu), dkl * (sigma - 1 / sigma) / len(mu)


def klb_swapped(dkl, cache):
    return tuple(reversed(kl_backward(dkl, cache)))


def betas_high(W, beta0):
    return beta0 * len(W) * np.asarray(W)


def betas_no_norm(W, beta0):
    return beta0 * (1 - np.asarray(W))


def betas_no_div(W, beta0):
    return beta0 * len(W) * (1 - np.asarray(W))


def betas_reversed(W, beta0):
    return bottleneck_betas(W, beta0)[::-1]


CHECKS = [
    (
        nb05.check_bottleneck_forward,
        bottleneck_forward,
        L.gaussian_bottleneck_forward,
        [
            (fwd_no_shift, "ignores the shift"),
            (fwd_variance, "sigma^2 * eps"),
            (fwd_noise_in_eval, "must be the mean"),
            (fwd_hardcoded, "hard-coded constants"),
            (fwd_unstable, "NaN or inf"),
        ],
    ),
    (
        nb05.check_kl_forward,
        kl_forward,
        L.gaussian_kl_forward,
        [
            (kl_sum_batch, "N = 4 times too large"),
            (kl_mean_all, "Z = 3 times too small"),
            (kl_no_half, "twice"),
            (kl_log_sigma, "half what it should be"),
            (kl_no_minus_one, "misses a constant"),
            (kl_per_sample, "expected one number"),
        ],
    ),
    (
        nb05.check_kl_backward,
        kl_backward,
        L.gaussian_kl_backward,
        [
            (klb_no_n, "N = 4 times too large"),
            (klb_no_dkl, "not multiplied by the upstream gradient"),
            (klb_dkl_squared, "dkl squared"),
            (klb_forgot_term, "misses a term"),
            (klb_sign, "wrong sign"),
            (klb_swapped, "(dsigma, dmu)"),
            (klb_log_sigma, "differentiated log sigma"),
            (klb_plus, "minus sign"),
            (klb_twice_mu, "dmu is twice"),
        ],
    ),
    (
        nb05.check_bottleneck_betas,
        bottleneck_betas,
        cal.bottleneck_betas,
        [
            (betas_high, "HIGH-contribution"),
            (betas_no_norm, "too small by M/(M-1)"),
            (betas_no_div, "M-1 times too large"),
            (betas_reversed, "reversed order"),
        ],
    ),
]


@pytest.mark.parametrize("check, solution, library, wrong", CHECKS, ids=lambda x: getattr(x, "__name__", ""))
def test_checker(check, solution, library, wrong):
    result = check(solution)
    assert result.passed, result.message
    assert "not implemented" in check(stub).message
    result = check(library)
    assert not result.passed and "library" in result.message
    messages = set()
    for fn, expected in wrong:
        result = check(fn)
        assert not result.passed, fn.__name__
        assert expected in result.message, (fn.__name__, result.message)
        messages.add(result.message)
    assert len(messages) == len(wrong)  # a different diagnosis for each typical mistake


def test_checkers_never_raise_on_garbage():
    for check, *_ in CHECKS:
        for fn in (lambda *a, **k: None, lambda *a, **k: "text", lambda *a, **k: 1 / 0):
            assert not check(fn).passed


# ------------------------------------------------------------- issue 19, point 7: verdicts that do not mislead
def test_swapped_mu_and_sigma_are_named():
    def swapped(*args, **kwargs):
        z, mu, sigma = bottleneck_forward(*args, **kwargs)
        return z, sigma, mu

    result = nb05.check_bottleneck_forward(swapped)
    assert not result.passed and "mu and sigma are swapped" in result.message, result.message


def klb_sign_sigma(dkl, cache):
    dmu, dsigma = kl_backward(dkl, cache)
    return dmu, -dsigma


def test_a_wrong_sign_is_explained_for_the_output_it_names():
    """A flipped dsigma is explained by sigma (the KL falls as sigma grows towards 1), not by mu."""
    message = nb05.check_kl_backward(klb_sign_sigma).message
    assert "dsigma has the wrong sign" in message, message
    reason = message.split("right answer.")[1]
    assert "sigma < 1" in reason and "negative" in reason and not re.search(r"\bmu\b", reason), message
    assert not _found(GRADIENT_PATTERNS, message), message
    message = nb05.check_kl_backward(klb_sign).message  # both flipped: dmu is named first, with mu's reason
    assert "dmu has the wrong sign" in message and "points the same way as mu" in message, message


def test_a_wrong_kl_prints_neither_a_factor_nor_the_answer():
    result = nb05.check_kl_forward(lambda mu, sigma: 0.3)
    assert not result.passed and "times the right answer" not in result.message, result.message
    assert "expected" not in result.message and "too small" in result.message, result.message


# ---------------------------------- exercises 2 and 3 are derivations: no closed form above the stubs or in a verdict
NOTEBOOK = TUTORIALS / "05_information_bottleneck.ipynb"


def _normalise(text):
    """Formulas written in LaTeX, Unicode or NumPy, reduced to one spelling: mu^2+sigma^2-logsigma^2-1."""
    for a, b in (("−", "-"), ("²", "^2"), ("μ", "mu"), ("σ", "sigma"), ("**", "^"), ("np.", ""), ("math.", "")):
        text = text.replace(a, b)
    text = re.sub(r"\\(left|right|[bB]igg?[lr]?|mathrm|,|;|!)", "", text)
    text = re.sub(r"_\{?(ij|i|j)\}?", "", text)  # mu_{ij} -> mu
    return re.sub(r"[\s\\{}]", "", text)


# the closed form of KL(N(mu, sigma^2) || N(0, 1)), in any order of its terms
KL_PATTERNS = [
    r"sigma\^2-log\(?sigma",
    r"log\(?sigma\^2\)?-1",
    r"mu\^2\+sigma\^2-",
    r"sigma\^2\+mu\^2-",
    r"mu\^2/2",
    r"fracmu\^22",
    r"-logsigma-1/2",
    r"-logsigma-t?frac12",
]
# its gradients: mu / N and (sigma - 1/sigma) / N
GRADIENT_PATTERNS = [
    r"sigma-1/sigma",
    r"sigma-t?frac1sigma",
    r"sigma-sigma\^\(?-1",
    r"1/sigma\)?/[nN]",
    r"mu/[nN]\b",
    r"mu/len",
    r"t?fracmu(N|n)",
]


def _cells():
    import json

    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]]


def _index(cells, text):
    found = [i for i, (_, source) in enumerate(cells) if text in source]
    assert found, f"no cell contains {text!r}"
    return found[0]


def _found(patterns, text):
    text = _normalise(text or "")
    return [p for p in patterns if re.search(p, text)]


def test_normalise_recognises_the_closed_forms():
    for form in (
        r"\frac12 \sum_j \left(\mu_{ij}^2 + \sigma_{ij}^2 - \log\sigma_{ij}^2 - 1\right)",
        "½(μ² + σ² − log σ² − 1)",
        "0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0)",
    ):
        assert _found(KL_PATTERNS, form), form
    for form in (r"\frac{1}{N}\Bigl(\sigma_{ij} - \frac{1}{\sigma_{ij}}\Bigr)", "(sigma - 1 / sigma) / n", "mu / n"):
        assert _found(GRADIENT_PATTERNS, form), form


def test_kl_and_its_gradients_are_not_given_above_the_stubs():
    cells = _cells()
    forward, backward = _index(cells, "def my_kl_forward("), _index(cells, "def my_kl_backward(")
    above_forward = "\n".join(source for _, source in cells[:forward])
    assert not _found(KL_PATTERNS + GRADIENT_PATTERNS, above_forward), _found(KL_PATTERNS, above_forward)
    above_backward = "\n".join(source for _, source in cells[:backward])
    assert not _found(GRADIENT_PATTERNS, above_backward), _found(GRADIENT_PATTERNS, above_backward)
    # the facts the derivation needs are given, their combination is not
    assert "E_q[z^2]=mu^2+sigma^2" in _normalise(above_forward).replace("mathbb", "")
    # no code cell before exercise 2 computes a KL (its output would print the answer's values)
    assert not any("gaussian_kl" in source for kind, source in cells[:forward] if kind == "code")


def test_the_closed_forms_are_revealed_after_the_check_cells():
    cells = _cells()
    forward_check = _index(cells, "exercises.check_kl_forward(my_kl_forward)")
    predict = _index(cells, "**Predict.** The model's σ starts at")
    revealed = "\n".join(source for _, source in cells[forward_check + 1 : predict])
    assert _found(KL_PATTERNS, revealed), "the KL's closed form should follow exercise 2's check, before the Predict"
    backward_check = _index(cells, "exercises.check_kl_backward(my_kl_backward)")
    assert _found(GRADIENT_PATTERNS, cells[backward_check + 1][1]), "the gradients should follow exercise 3's check"


def test_kl_verdicts_do_not_give_the_closed_form():
    wrongs = [kl_sum_batch, kl_mean_all, kl_no_half, kl_log_sigma, kl_no_minus_one, kl_per_sample, stub]
    wrongs += [lambda mu, sigma: 0.3, lambda mu, sigma: -kl_forward(mu, sigma)]
    texts = [nb05.check_kl_forward.__doc__, nb05.check_kl_backward.__doc__, nb05.__doc__]
    texts += [nb05.check_kl_forward(wrong).message for wrong in wrongs]
    for text in texts:
        assert not _found(KL_PATTERNS + GRADIENT_PATTERNS, text), (text, _found(KL_PATTERNS, text))
    backward_wrongs = [klb_no_n, klb_no_dkl, klb_dkl_squared, klb_forgot_term, klb_sign, klb_swapped, klb_log_sigma]
    backward_wrongs += [klb_plus, klb_twice_mu, stub]
    for wrong in backward_wrongs:
        message = nb05.check_kl_backward(wrong).message
        assert not _found(GRADIENT_PATTERNS, message), (message, _found(GRADIENT_PATTERNS, message))
