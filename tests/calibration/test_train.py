"""Training the ``<attn>_digits`` models and the shared checkpoint cache."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from edge_se.cli import main
from edge_se.data import digits as D
from edge_se.data.cache import cached_digits_checkpoint, config_hash
from edge_se.data.train import TrainConfig, evaluate, read_sidecar, train_digits
from edge_se.errors import InputError
from edge_se.models.registry import create_model


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def test_train_digits_command_writes_a_loadable_state_dict_and_sidecar(tmp_path, capsys):
    ckpt = tmp_path / "eca.pt"
    assert main(["train-digits", "eca", "--out", str(ckpt), "--epochs", "1", "--json"]) == 0
    side = json.loads(capsys.readouterr().out)
    assert side == read_sidecar(ckpt)
    assert side["model"] == "eca_digits" and side["config"]["epochs"] == 1 and side["config"]["seed"] == 0
    assert 0.0 <= side["accuracy"]["digits_hard"] <= 1.0 and side["n_test"] == 450 and side["n_hard"] == 9000
    model = create_model("eca_digits")
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eca.pt", "eca.pt.json"]


def test_training_is_reproducible_for_a_seed(tmp_path):
    net = tiny_net()
    a = train_digits("se", tmp_path / "a.pt", epochs=1, seed=3, model=copy.deepcopy(net))
    b = train_digits("se", tmp_path / "b.pt", epochs=1, seed=3, model=copy.deepcopy(net))
    c = train_digits("se", tmp_path / "c.pt", epochs=1, seed=4, model=copy.deepcopy(net))
    sa, sb, sc = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in "abc")
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and a["accuracy"] == b["accuracy"]
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a["custom_model"] is True and c["config"]["seed"] == 4


def test_unknown_attention_type_bad_epochs_and_bad_threads_are_refused(tmp_path):
    with pytest.raises(InputError, match="attention type must be one of"):
        train_digits("transformer", tmp_path / "x.pt", epochs=1)
    with pytest.raises(InputError, match="epochs"):
        train_digits("se", tmp_path / "x.pt", epochs=0)
    with pytest.raises(InputError, match="threads"):
        train_digits("se", tmp_path / "x.pt", epochs=1, threads=0)
    assert not list(tmp_path.iterdir())


def test_cache_key_changes_with_the_training_config():
    assert config_hash(TrainConfig("se", epochs=1)) != config_hash(TrainConfig("se", epochs=2))
    assert config_hash(TrainConfig("se", seed=0)) != config_hash(TrainConfig("se", seed=1))
    assert config_hash(TrainConfig("se")) == config_hash(TrainConfig("se"))


_CHILD = (
    "import sys; from edge_se.data.cache import cached_digits_checkpoint as c; "
    "p = c('eca', sys.argv[1], epochs=1); print(p, p.stat().st_mtime_ns)"
)


def test_concurrent_processes_train_once_and_share_the_checkpoint(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]  # same file, same mtime: written once
    ckpt = cached_digits_checkpoint("eca", tmp_path, epochs=1)  # a third caller reuses it
    assert [str(ckpt), str(ckpt.stat().st_mtime_ns)] == outs[0]
    assert ckpt.name.startswith("eca_digits-seed0-") and read_sidecar(ckpt)["config"]["epochs"] == 1


@pytest.mark.slow
def test_cached_se_digits_reaches_97_percent_and_digits_hard_is_harder_than_test():
    ckpt = cached_digits_checkpoint("se")  # trained once per cache ($EDGE_SE_CACHE)
    model = create_model("se_digits")
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    x, y = D.digits_arrays("test")
    acc = evaluate(model, x, y)
    assert acc >= 0.97
    side = read_sidecar(ckpt)
    assert side["accuracy"]["test"] == pytest.approx(acc)
    assert side["accuracy"]["digits_hard"] < acc  # augmented held-out digits: harder, in distribution
    assert np.isfinite(side["train_seconds"])
