"""The parts of benchmarks/bench_torch.py that run without PyTorch (the weight mapping and the skip message), the
flat step of benchmarks/bench_floor.py (the same numbers as train()), and the CLI's malloc setting."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
bench_torch = pytest.importorskip("bench_torch")


@pytest.mark.parametrize("hidden", [(64, 32), (8, 8, 4)])
def test_torch_layout_is_the_same_network(hidden):
    model, params = bench_torch.initial_params(hidden)
    g = np.random.default_rng(0)
    xs = [g.standard_normal((5, d)).astype(np.float32) for d in model.config.input_dims]
    tparams = bench_torch.torch_layout(model, params)
    assert all(v.flags["C_CONTIGUOUS"] for v in tparams.values())
    assert tparams["b0.1.weight"].shape == (hidden[0], model.config.input_dims[0])  # nn.Linear: (out, in)
    expected = model.logits(params, xs)
    np.testing.assert_allclose(bench_torch.logits_torch_layout(tparams, xs, hidden), expected, rtol=1e-5, atol=1e-6)


def test_skips_with_a_clear_message_without_torch(monkeypatch, capsys):
    monkeypatch.setattr(bench_torch, "torch_available", lambda: False)
    assert bench_torch.main(["--models", "default", "--steps", "2", "--repeats", "1"]) == 0
    assert "skipped, PyTorch is not installed" in capsys.readouterr().out


def test_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench_torch.main(["--steps", "1"])


FAULTS = """
import resource, sys
if sys.argv[1] == "keep":
    from mini_cal.lab.cli import keep_freed_memory
    keep_freed_memory()
from mini_cal.methods import make_method
from mini_cal.synthetic import load_preset
from mini_cal.train import TrainConfig, train
ds = load_preset("default")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
train(make_method("cal"), ds, TrainConfig(epochs=4, progress=False, probe=False))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_keep_freed_memory_cuts_page_faults():
    """The CLI's malloc setting (mini_cal.lab.cli.keep_freed_memory): a CAL run faults far fewer pages in."""
    import subprocess

    faults = {
        how: int(subprocess.run([sys.executable, "-c", FAULTS, how], capture_output=True, text=True, check=True).stdout)
        for how in ("default", "keep")
    }
    assert faults["keep"] < faults["default"] / 2, faults


def test_flat_floor_step_computes_what_train_computes():
    """bench_floor's flat step is a floor for the library's only while it does the same arithmetic: after an epoch
    its parameters equal train()'s bit for bit (with clipping active: a large learning rate)."""
    import dataclasses

    bench_floor = pytest.importorskip("bench_floor")
    bench_floor.check_same_numbers(6)
    ds = bench_floor.bench_step.synthetic_dataset(64 * 4)
    config = dataclasses.replace(bench_floor.library_config(), lr=2.0, clip_norm=0.5)
    flat = bench_floor.FlatJoint(ds, config)
    norms = [flat.step(idx)[1] for idx in np.array_split(flat.rng.permutation(len(ds.y_train)), 4)]
    assert max(norms) > 0.5  # the clipping branch ran
    from mini_cal.methods import Joint
    from mini_cal.train import train

    lib = train(Joint(), ds, config).params
    for k in flat.names:
        assert np.array_equal(lib[k], flat.views[k]), k


def test_fingerprint_is_repeatable_and_sees_a_changed_number(monkeypatch):
    """benchmarks/fingerprint.py, the bit-identity check for speed work: the same run hashes the same, and a change in
    the last bit of one parameter update changes the hash."""
    fingerprint = pytest.importorskip("fingerprint")
    assert ("tiny", 6, "cal-W-val-epoch") in fingerprint.runs() and ("tiny", 6, "unimodal-2") not in fingerprint.runs()
    first = fingerprint.fingerprint("tiny", 2, "joint")
    assert fingerprint.fingerprint("tiny", 2, "joint") == first
    from mini_cal import optim

    monkeypatch.setattr(optim.SGD, "__init__", _nudged_sgd_init(optim.SGD.__init__))
    assert fingerprint.fingerprint("tiny", 2, "joint") != first


def _nudged_sgd_init(init):
    def nudged(self, lr=0.05, *args, **kwargs):
        init(self, float(np.nextafter(np.float32(lr), np.float32(1.0))), *args, **kwargs)

    return nudged
