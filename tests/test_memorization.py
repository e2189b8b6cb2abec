"""The memorization estimator: the vmapped ensemble trains the same models as sequential training, the fallback for
models with running statistics, the seeded masks and batch streams, the estimate on a case with a known answer, and
shards (blocks of the models trained apart, merged into the same scores), down to a sharded sweep through the CLI."""

import json

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from orchestrator.cli import main
from orchestrator.track import Tracker
from tests.conftest import tiny_quickstart
from workloads.data import random_shift_1d
from workloads.memorization import (
    MemorizationConfig,
    SubsetStream,
    estimate_memorization,
    memorization_from,
    shard_models,
    subset_masks,
    train_subset_models,
    why_not_vectorized,
)
from workloads.models import CNN1DConfig, build_model
from workloads.models.resnet import ResNetConfig
from workloads.train import TrainConfig, steps_for


def tiny_signals(n=240, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 24, generator=g)
    return x, (x[:, 0, :12].sum(1) > x[:, 0, 12:].sum(1)).long() + 2 * (x[:, 0, 0] > 0).long()


def tiny_cnn(seed):
    return build_model("cnn1d", CNN1DConfig(channels=[4, 8], hidden=16), (1, 24), 4, seed)


def test_vmapped_ensemble_trains_the_same_models_as_sequential_training():
    x, y = tiny_signals()
    cfg = MemorizationConfig(
        num_models=3,
        subset_fraction=0.6,
        seed=5,
        train=TrainConfig(epochs=3, batch_size=32, lr=1e-2, weight_decay=1e-3),
    )
    included = subset_masks(3, len(y), 0.6, 5)
    runs = {}
    for vectorize in (True, False):
        cfg.vectorize = vectorize
        runs[vectorize] = train_subset_models(tiny_cnn, x, y, included, cfg, augment=random_shift_1d(2))
    vmapped, sequential = runs[True], runs[False]
    assert (vmapped.mode, sequential.mode) == (
        "vmap",
        "sequential",
    ) and sequential.message == "sequential: vectorize is off"
    for name, p in vmapped.params.items():
        assert p.shape[0] == 3
        torch.testing.assert_close(p, sequential.params[name], rtol=1e-4, atol=1e-5)
        assert not torch.allclose(p, tiny_cnn(0).state_dict()[name].expand_as(p))  # trained, not the initial weights
    assert (
        vmapped.params["head.3.bias"][0] - vmapped.params["head.3.bias"][1]
    ).abs().max() > 1e-3  # 3 different models
    a, b = vmapped.logits(x), sequential.logits(x, chunk=100)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    top2 = b.topk(2, dim=2).values
    clear = (top2[..., 0] - top2[..., 1]) > 1e-3  # argmax is only comparable where it is not a near-tie
    assert torch.equal((a.argmax(2) == y)[clear], (b.argmax(2) == y)[clear])

    results = {}
    for vectorize in (True, False):
        cfg.vectorize = vectorize
        results[vectorize] = estimate_memorization(tiny_cnn, x, y, cfg)
    assert results[True]["mode"] == "vmap" and torch.equal(results[True]["included"], results[False]["included"])
    same = (results[True]["correct"] == results[False]["correct"]).all(0)  # all but near-ties
    assert same.float().mean() > 0.99
    assert torch.equal(results[True]["scores"][same], results[False]["scores"][same])


def test_batch_norm_falls_back_to_sequential_and_says_why():
    x, y = tiny_signals(96)

    def with_batch_norm(seed):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(96, 4)
        )

    cfg = MemorizationConfig(num_models=2, train=TrainConfig(epochs=2, batch_size=16, augment=False))
    out = estimate_memorization(with_batch_norm, x, y, cfg)
    assert out["mode"] == "sequential" and "batch-norm running statistics" in out["message"]
    assert out["correct"].shape == (2, 96) and out["scores"].shape == (96,)
    resnet = build_model("resnet18", ResNetConfig(width=2), (3, 8, 8), 10, 0)
    assert "batch-norm" in why_not_vectorized(resnet, torch.zeros(2, 3, 8, 8))


def test_any_buffer_that_training_mutates_prevents_vmap_but_constant_buffers_do_not():
    class Counting(nn.Linear):
        def __init__(self, mutate):
            super().__init__(24, 4)
            self.mutate = mutate
            self.register_buffer("seen", torch.zeros(()))

        def forward(self, x):
            if self.mutate and self.training:
                self.seen += len(x)
            return super().forward(x.flatten(1))

    x, _ = tiny_signals(8)
    assert "mutates" in why_not_vectorized(Counting(mutate=True), x)
    assert why_not_vectorized(Counting(mutate=False), x) is None
    assert "dropout" in why_not_vectorized(nn.Sequential(nn.Dropout(0.1), Counting(False)), x)


def test_memorization_is_one_for_an_example_right_only_when_trained_on():
    # Example 0 is the only one of class 1 and the only one with feature 0: a linear model gets it right exactly when
    # it trained on it. Every other example is class 0 with its own feature: always right, memorization 0.
    n = 16
    x, y = torch.eye(n).unsqueeze(1), torch.zeros(n, dtype=torch.long)
    y[0] = 1

    def linear(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(n, 2))

    for vectorize in (True, False):
        cfg = MemorizationConfig(
            num_models=8,
            subset_fraction=0.5,
            seed=1,
            vectorize=vectorize,
            train=TrainConfig(epochs=30, batch_size=4, lr=0.05, weight_decay=0.0, augment=False),
        )
        out = estimate_memorization(linear, x, y, cfg)
        assert 0 < out["included"][:, 0].sum() < 8  # example 0 is in some subsets and out of others
        assert torch.equal(out["correct"][:, 0], out["included"][:, 0])
        assert out["scores"][0].item() == 1.0 and out["scores"][1:].abs().max().item() == 0.0


def test_masks_are_seeded():
    a, b, c = subset_masks(4, 1000, 0.7, 3), subset_masks(4, 1000, 0.7, 3), subset_masks(4, 1000, 0.7, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.bool and abs(a.float().mean().item() - 0.7) < 0.03


def test_subset_stream_gives_full_batches_of_successive_permutations():
    x, y = torch.arange(20.0).view(20, 1, 1), torch.arange(20)
    subset = torch.tensor([2, 3, 5, 7, 11])
    stream = SubsetStream(x, y, subset, 3, torch.Generator().manual_seed(0))
    drawn = torch.cat([next(stream)[1] for _ in range(5)])  # 15 = three passes of 5, wrapping across batches
    for p in range(3):
        assert sorted(drawn[5 * p : 5 * p + 5].tolist()) == subset.tolist()
    again = SubsetStream(x, y, subset, 3, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([next(again)[1] for _ in range(5)]), drawn)
    with pytest.raises(ValueError):
        SubsetStream(x, y, subset[:0], 3, torch.Generator())


def merged_shards(x, y, cfg, count):
    parts = [
        estimate_memorization(tiny_cnn, x, y, cfg, models=shard_models(cfg.num_models, count, i)) for i in range(count)
    ]
    included, correct = (torch.cat([part[name] for part in parts]) for name in ("included", "correct"))
    return {"scores": memorization_from(included, correct), "included": included, "correct": correct}


def test_shards_on_the_sequential_path_merge_into_the_unsharded_estimate_bitwise():
    x, y = tiny_signals(120)
    cfg = MemorizationConfig(
        num_models=4,
        subset_fraction=0.5,
        seed=3,
        vectorize=False,
        train=TrainConfig(epochs=1, batch_size=4, lr=1e-2, weight_decay=1e-3),
    )
    assert [list(shard_models(4, 3, i)) for i in range(3)] == [[0], [1], [2, 3]]  # contiguous blocks, every model once
    masks = subset_masks(4, len(y), 0.5, 3)
    own_steps = [
        steps_for(1, round(masks[list(shard_models(4, 3, i))].sum(1).float().mean().item()), 4) for i in range(3)
    ]
    assert set(own_steps) != {
        steps_for(1, round(masks.sum().item() / 4), 4)
    }  # a shard's own mean would change the steps
    whole = estimate_memorization(tiny_cnn, x, y, cfg)
    for count in (2, 3):
        merged = merged_shards(x, y, cfg, count)
        for name in ("included", "correct", "scores"):
            assert torch.equal(merged[name], whole[name]), (count, name)
    assert whole["scores"].abs().max() > 0  # not trivially equal


def test_shards_on_the_vmap_path_train_the_same_models_up_to_float_rounding():
    x, y = tiny_signals(120)
    cfg = MemorizationConfig(
        num_models=4, subset_fraction=0.5, seed=3, train=TrainConfig(epochs=1, batch_size=4, lr=1e-2, weight_decay=1e-3)
    )
    masks = subset_masks(4, len(y), 0.5, 3)
    whole = train_subset_models(tiny_cnn, x, y, masks, cfg, augment=random_shift_1d(2))
    shards = [
        train_subset_models(tiny_cnn, x, y, masks, cfg, augment=random_shift_1d(2), models=range(0, 3)),
        train_subset_models(tiny_cnn, x, y, masks, cfg, augment=random_shift_1d(2), models=range(3, 4)),
    ]
    assert whole.mode == shards[0].mode == "vmap" and [len(s) for s in shards] == [3, 1]
    for name, p in whole.params.items():
        torch.testing.assert_close(torch.cat([s.params[name] for s in shards]), p, rtol=1e-4, atol=1e-5)
    a, b = whole.logits(x), torch.cat([s.logits(x) for s in shards])
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)

    estimate, merged = estimate_memorization(tiny_cnn, x, y, cfg), merged_shards(x, y, cfg, 2)
    assert torch.equal(merged["included"], estimate["included"])
    same = (merged["correct"] == estimate["correct"]).all(0)  # all but near-ties
    assert same.float().mean() > 0.99
    torch.testing.assert_close(merged["scores"][same], estimate["scores"][same])


@pytest.mark.e2e
def test_a_sharded_sweep_runs_shard_nodes_and_chooses_the_same_forget_set(tmp_path, tracking, capsys):
    path = tiny_quickstart(
        tmp_path / "q.yaml",
        memorization__shards=2,
        relearn__k=[0],
        methods=[{"name": "neggrad_plus", "hparams": {"lr": 1e-2, "epochs": 0.5}}],
    )
    store = [f"tracking.uri={tracking['uri']}", f"tracking.artifact_location={tracking['artifacts']}"]
    assert main(["run", str(path), "memorization.shards=0", *store, "--summary", str(tmp_path / "bad.json")]) == 2
    assert "memorization.shards" in capsys.readouterr().err

    client, runs, summaries = MlflowClient(tracking["uri"]), {}, {}
    for shards in (2, 1):
        summary = tmp_path / f"s{shards}.json"
        assert main(["run", str(path), f"memorization.shards={shards}", *store, "--summary", str(summary)]) == 0
        summaries[shards] = done = json.loads(summary.read_text())
        assert done["nodes"]["failed"] == 0
        runs[shards] = client.search_runs(
            [client.get_experiment_by_name("unlearn-sweep").experiment_id],
            f"tags.sweep_id = '{done['sweep_id']}' and tags.node_kind = 'memorization'",
        )
    assert sorted(r.info.run_name for r in runs[2]) == [
        "memorization",
        "memorization shard 0/2",
        "memorization shard 1/2",
    ]
    assert all(r.info.status == "FINISHED" for r in runs[2]) and len(runs[1]) == 1
    tracker = Tracker(tracking["uri"], "unlearn-sweep", tracking["artifacts"])
    tensors = lambda shards, name: tracker.artifacts.load_tensors(
        next(r.info.run_id for r in runs[shards] if r.info.run_name == name)
    )
    scores = {shards: tensors(shards, "memorization")["scores"] for shards in runs}
    assert torch.equal(scores[2], scores[1])  # the same scores (sequential path), so the same forget set
    assert (
        summaries[2]["original"]["forget_acc"] == summaries[1]["original"]["forget_acc"]
    )  # one original, one forget set
    assert summaries[2]["original"]["run_id"] == summaries[1]["original"]["run_id"]
    shard = tensors(2, "memorization shard 1/2")
    assert shard["included"].dtype == torch.bool and shard["correct"].shape == (2, len(scores[2]))
