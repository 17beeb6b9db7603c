import json

import numpy as np
import pytest

from mini_cal import noise as N
from mini_cal.lab.cli import main


@pytest.fixture
def xs(rng):
    return [rng.standard_normal((4000, 6)).astype(np.float32), 0.03 * rng.standard_normal((4000, 8)).astype(np.float32)]


@pytest.mark.parametrize("name", N.ATTACKS)
def test_eps_zero_is_identity_and_input_untouched(xs, name):
    copies = [x.copy() for x in xs]
    out, _ = N.attack(xs, name, 0, "all", seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(out, xs))
    N.attack(xs, name, 10, "all", seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(copies, xs))  # never modifies its input


@pytest.mark.parametrize("name", N.ATTACKS)
def test_fraction_finite_target_and_determinism(xs, name):
    out, attacked = N.attack(xs, name, 10, 1, seed=3)
    assert 0.47 < attacked.mean() < 0.53
    assert np.array_equal(out[0], xs[0])  # only the chosen modality is touched
    changed = np.any(out[1] != xs[1], axis=1)
    assert changed.any() and not np.any(changed & ~attacked)  # only attacked samples change
    assert all(np.all(np.isfinite(x)) for x in out)
    again, _ = N.attack(xs, name, 10, 1, seed=3)
    assert np.array_equal(again[1], out[1])
    other, _ = N.attack(xs, name, 10, 1, seed=4)
    assert not np.array_equal(other[1], out[1])


def test_attack_strength_grows_with_level(xs):
    dist = [np.abs(N.attack(xs, "gaussian", eps, 0, seed=0)[0][0] - xs[0]).mean() for eps in (2, 6, 10)]
    assert dist[0] < dist[1] < dist[2]
    out, attacked = N.attack(xs, "missing", 10, "all", seed=0)
    assert np.all(out[0][attacked] == 0) and np.all(out[1][attacked] == 0)  # eps = 10: every attacked sample
    out, _ = N.attack(xs, "salt_pepper", 10, 0, seed=0)
    hit = out[0] != xs[0]
    lo, hi = xs[0].min(0), xs[0].max(0)
    assert np.all((out[0] == lo) | (out[0] == hi) | ~hit)
    assert 0.2 < hit[out[0] != xs[0]].size / xs[0].size < 0.3  # 0.5 attacked x 0.5 density


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(name="blur"), "attack: expected one of"),
        (dict(eps=11), r"eps: expected a finite number >= 0 and <= 10, got 11"),
        (dict(target=2), r"target: expected one of \('all', 0, 1\), got 2"),
        (dict(p_attack=1.5), "p_attack"),
    ],
)
def test_bad_arguments(xs, kw, msg):
    args = dict(name="gaussian", eps=5, target=0, p_attack=0.5)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        N.attack(xs, args["name"], args["eps"], args["target"], p_attack=args["p_attack"])


def test_auc():
    assert N.auc([0, 10], [1.0, 0.0]) == pytest.approx(0.5)
    assert N.auc(range(11), [0.8] * 11) == pytest.approx(0.8)


def test_robustness_end_to_end_trains_and_reuses_compare_models(tmp_path, capsys):
    cmp_out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--preset",
                "tiny",
                "--seeds",
                "1",
                "--epochs",
                "2",
                "--jobs",
                "1",
                "--no-progress",
                "--methods",
                "joint",
                "cal",
                "--out",
                str(cmp_out),
            ]
        )
        == 0
    )
    rob = tmp_path / "rob"
    assert (
        main(
            [
                "robustness",
                "--preset",
                "tiny",
                "--seeds",
                "1",
                "--jobs",
                "1",
                "--no-progress",
                "--methods",
                "joint",
                "cal",
                "--models",
                str(cmp_out / "models"),
                "--out",
                str(rob),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "gaussian on modality V" in text and "AUC" in text
    result = json.loads((rob / "robustness.json").read_text())
    curve = result["records"][0]["attacks"]["missing"]["all"]
    assert len(curve) == 11
    saved = json.loads((cmp_out / "results.json").read_text())
    assert curve[0] == pytest.approx(saved["records"][0]["test"]["acc"])  # eps = 0: the clean test accuracy
    assert (rob / "robustness.png").stat().st_size > 1000
    # training path and a clean error for missing models
    assert (
        main(
            [
                "robustness",
                "--preset",
                "tiny",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--jobs",
                "1",
                "--no-progress",
                "--methods",
                "joint",
                "--out",
                str(tmp_path / "rob2"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "robustness",
                "--preset",
                "tiny",
                "--seeds",
                "3",
                "--no-progress",
                "--methods",
                "joint",
                "--models",
                str(cmp_out / "models"),
                "--out",
                str(tmp_path / "rob3"),
            ]
        )
        == 2
    )
    assert "no saved model" in capsys.readouterr().err
    assert not (tmp_path / "rob3").exists()  # nothing half-written


def test_levels_are_nested(xs):
    """Common random numbers: a higher level hits a superset of what a lower one hits."""
    for name in ("salt_pepper", "missing"):
        hits = [np.any(N.attack(xs, name, eps, 0, seed=2)[0][0] != xs[0], axis=1) for eps in (3, 6, 10)]
        assert np.all(hits[0] <= hits[1]) and np.all(hits[1] <= hits[2])
    a = N.attack(xs, "gaussian", 4, 0, seed=2)[0][0] - xs[0]
    b = N.attack(xs, "gaussian", 8, 0, seed=2)[0][0] - xs[0]
    np.testing.assert_allclose(b, 2 * a, rtol=1e-4, atol=1e-5)  # the same noise, scaled
