from dataclasses import asdict

import numpy as np
import pytest
import torch
import yaml

from cfgrl.pipeline.provenance import data_hash
from cfgrl.pipeline.spec import load_spec
from cfgrl.pipeline.train import load_agent, train


def _spec(tmp_path, method, steps):
    raw = {"name": "t", "seeds": [0],
           "envs": {"pointmaze-medium-navigate-v0": {"data": {"source": "generate", "episodes": 4}}},
           "methods": {method: {"config": {"steps": steps, "batch_size": 32, "hidden": [32, 32], "log_every": 10,
                                           "checkpoint_every": 25, "device": "cpu"}}}}
    if method == "gc_cfgrl":
        raw["methods"][method]["w"] = [1]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


@pytest.mark.parametrize("method", ["gcbc", "gc_cfgrl"])
def test_interrupted_then_resumed_training_is_bit_identical(tmp_path, tiny_navigate_data, method):
    spec = _spec(tmp_path, method, steps=60)
    env = "pointmaze-medium-navigate-v0"
    train(spec, method, env, 0, tiny_navigate_data, tmp_path / "straight")
    # interrupt at step 37 (past the checkpoint at 25): the resumed run redoes 26..37 from the checkpoint
    train(spec, method, env, 0, tiny_navigate_data, tmp_path / "resumed", stop_after=37)
    assert (tmp_path / "resumed" / "_progress" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "model.pt").exists()
    train(spec, method, env, 0, tiny_navigate_data, tmp_path / "resumed")
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)["networks"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=False)["networks"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not (tmp_path / "resumed" / "_progress" / "checkpoint.pt").exists()
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,steps_per_s") and len(rows) == 1 + 6
    agent, record = load_agent(tmp_path / "resumed" / "model.pt")
    assert record["provenance"]["steps"] == 60
    assert record["config"] == asdict(spec.methods[method].config) and record["config"]["steps"] == 60
    assert record["provenance"]["data_sha256"] == data_hash(tiny_navigate_data)


def test_same_seed_same_parameters_other_seed_differs(tmp_path, tiny_navigate_data):
    spec = _spec(tmp_path, "gc_cfgrl", steps=20)
    env = "pointmaze-medium-navigate-v0"
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        train(spec, "gc_cfgrl", env, seed, tiny_navigate_data, tmp_path / name)
    load = [torch.load(tmp_path / n / "model.pt", weights_only=False)["networks"] for n in "abc"]
    assert all(torch.equal(load[0][k], load[1][k]) for k in load[0])
    assert not all(torch.equal(load[0][k], load[2][k]) for k in load[0])


def test_a_seed_trained_in_a_group_equals_the_seed_trained_alone(tmp_path, tiny_navigate_data):
    from cfgrl.pipeline.train import train_group

    spec = _spec(tmp_path, "gc_cfgrl", steps=60)
    env = "pointmaze-medium-navigate-v0"
    group = train_group(spec, "gc_cfgrl", env, [0, 1, 2], tiny_navigate_data,
                        [tmp_path / "g" / f"seed{s}" for s in (0, 1, 2)])
    assert set(group) == {0, 1, 2}
    train(spec, "gc_cfgrl", env, 1, tiny_navigate_data, tmp_path / "alone1")
    a = torch.load(tmp_path / "g" / "seed1" / "model.pt", weights_only=False)["networks"]
    b = torch.load(tmp_path / "alone1" / "model.pt", weights_only=False)["networks"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit: the members are stepped in turn
    c = torch.load(tmp_path / "g" / "seed2" / "model.pt", weights_only=False)["networks"]
    assert not all(torch.equal(a[k], c[k]) for k in a)
    drop = lambda text: [line.split(",", 3)[::3] for line in text.splitlines()]  # noqa: E731  (no timings)
    assert drop((tmp_path / "g" / "seed1" / "metrics.csv").read_text()) == \
        drop((tmp_path / "alone1" / "metrics.csv").read_text())


def test_a_killed_group_resumes_exactly(tmp_path, tiny_navigate_data):
    from cfgrl.pipeline.train import train_group

    spec = _spec(tmp_path, "gcbc", steps=60)
    env = "pointmaze-medium-navigate-v0"
    outs = lambda name: [tmp_path / name / f"seed{s}" for s in (0, 1)]  # noqa: E731
    train_group(spec, "gcbc", env, [0, 1], tiny_navigate_data, outs("straight"))
    train_group(spec, "gcbc", env, [0, 1], tiny_navigate_data, outs("resumed"), stop_after=30)
    train_group(spec, "gcbc", env, [0, 1], tiny_navigate_data, outs("resumed"))
    for s in (0, 1):
        a = torch.load(tmp_path / "straight" / f"seed{s}" / "model.pt", weights_only=False)["networks"]
        b = torch.load(tmp_path / "resumed" / f"seed{s}" / "model.pt", weights_only=False)["networks"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        rows_a = (tmp_path / "straight" / f"seed{s}" / "metrics.csv").read_text().splitlines()
        rows_b = (tmp_path / "resumed" / f"seed{s}" / "metrics.csv").read_text().splitlines()
        # the same rows, none lost or repeated; the interval means equal too (the running sums are checkpointed)
        assert [r.split(",")[0] for r in rows_a] == [r.split(",")[0] for r in rows_b] == \
            ["step"] + [str(k) for k in range(10, 61, 10)]
        assert [r.split(",")[3:] for r in rows_a] == [r.split(",")[3:] for r in rows_b]


def test_metrics_csv_grows_while_training_runs(tmp_path, tiny_navigate_data):
    """The file exists with the rows so far before training ends (read at the checkpoint of a stopped run)."""
    spec = _spec(tmp_path, "gcbc", steps=60)
    train(spec, "gcbc", "pointmaze-medium-navigate-v0", 0, tiny_navigate_data, tmp_path / "run", stop_after=30)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,steps_per_s,eta_s") and [r.split(",")[0] for r in rows[1:]] == ["10", "20", "30"]
    assert "val/actor/loss" in rows[0]  # the held-out validation loss beside the training loss
    assert not (tmp_path / "run" / "model.pt").exists()


def test_a_non_finite_loss_stops_training_naming_the_component_and_keeps_the_checkpoint(tmp_path,
                                                                                         tiny_navigate_data):
    from cfgrl.pipeline.train import NonFiniteLoss

    spec = _spec(tmp_path, "gcbc", steps=60)
    env = "pointmaze-medium-navigate-v0"
    train(spec, "gcbc", env, 0, tiny_navigate_data, tmp_path / "run", stop_after=25)  # checkpoint at 25
    from baselines.bc import BC

    original = BC.loss

    def poisoned(self, batch, generator):
        loss, info = original(self, batch, generator)
        if self.step >= 33:
            info["actor/mse"] = info["actor/mse"] * float("nan")
        return loss, info

    BC.loss = poisoned
    try:
        with pytest.raises(NonFiniteLoss, match=r"non-finite actor/mse at step 34 .*checkpoint at step 25 is kept"):
            train(spec, "gcbc", env, 0, tiny_navigate_data, tmp_path / "run")
    finally:
        BC.loss = original
    kept = torch.load(tmp_path / "run" / "_progress" / "checkpoint.pt", weights_only=False)
    assert kept["agent"]["step"] == 25 and not (tmp_path / "run" / "model.pt").exists()


def test_bf16_precision_trains_close_to_fp32_and_keeps_fp32_weights():
    """`precision: bf16` autocasts the loss only: weights stay fp32 and the first update's loss agrees with fp32
    to bf16 rounding."""
    from cfgrl.methods import method_class

    cls = method_class("cfgrl")
    rng = np.random.default_rng(0)
    batch = {"observations": rng.standard_normal((32, 5)), "actions": rng.uniform(-1, 1, (32, 2)),
             "rewards": rng.standard_normal(32), "masks": np.ones(32),
             "next_observations": rng.standard_normal((32, 5))}
    batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}
    losses = {}
    for precision in ("fp32", "bf16"):
        agent = cls(cls.Config(hidden=(32, 32), value_hidden=(32, 32), precision=precision), 5, 2, 0,
                    torch.device("cpu"), seed=0)
        info = agent.update(batch)
        losses[precision] = float(info["actor/loss"])
        assert all(p.dtype == torch.float32 for p in agent.parameters())
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05) and losses["bf16"] != losses["fp32"]


def _critic_spec(tmp_path, share: bool, value_hidden=(32, 32)):
    critic = {"steps": 40, "batch_size": 32, "hidden": [32, 32], "value_hidden": [32, 32], "log_every": 10,
              "checkpoint_every": 15, "device": "cpu"}
    raw = {"name": "t", "seeds": [0, 1],
           "envs": {"pointmaze-medium-navigate-singletask-v0": {"data": {"source": "generate", "episodes": 4}}},
           "methods": {"cfgrl": {"w": [0, 1, 3], "config": {**critic, "flow_steps": 4}},
                       "awr_t3": {"method": "awr", "config": {**critic, "temperature": 3.0}},
                       "awr_t10": {"method": "awr", "config": {**critic, "temperature": 10.0,
                                                               "value_hidden": list(value_hidden)}},
                       "idql": {"config": {**critic, "flow_steps": 4, "num_samples": 4}}},
           "train": {"share_critic": share}}
    path = tmp_path / f"spec-{share}-{value_hidden[0]}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_spec(path)


def _same_run(a, b):
    """model.pt networks and metrics.csv (less the timings) of two seed folders are identical."""
    na = torch.load(a / "model.pt", weights_only=False)["networks"]
    nb = torch.load(b / "model.pt", weights_only=False)["networks"]
    assert na.keys() == nb.keys() and all(torch.equal(na[k], nb[k]) for k in na), (a, b)
    rows = [[r.split(",")[:1] + r.split(",")[3:] for r in (p / "metrics.csv").read_text().splitlines()]
            for p in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 1 + 4, (a, b)


def test_entries_on_a_shared_critic_end_as_their_solo_runs_and_resume_exactly(tmp_path, tiny_navigate_data):
    """CFGRL, AWR and IDQL trained on one critic per seed (train.share_critic) give, bit for bit, the parameters
    and metric rows of each entry trained alone; a killed shared job resumes to the same numbers."""
    from cfgrl.pipeline.train import train_job

    spec = _critic_spec(tmp_path, share=True)
    env = "pointmaze-medium-navigate-singletask-v0"
    labels = ["cfgrl", "awr_t3", "awr_t10", "idql"]
    assert spec.training_jobs() == [(tuple(labels), env, (0,)), (tuple(labels), env, (1,))]
    for label in labels:
        train(spec, label, env, 1, tiny_navigate_data, tmp_path / "solo" / label)
    outs = {(m, 1): tmp_path / "shared" / m for m in labels}
    train_job(spec, labels, env, [1], tiny_navigate_data, outs, stop_after=20)  # past the checkpoint at 15
    assert not (tmp_path / "shared" / "cfgrl" / "model.pt").exists()
    train_job(spec, labels, env, [1], tiny_navigate_data, outs)
    for label in labels:
        _same_run(tmp_path / "solo" / label, tmp_path / "shared" / label)


def test_only_critics_trained_alike_share_and_only_when_asked(tmp_path):
    env = "pointmaze-medium-navigate-singletask-v0"
    jobs = _critic_spec(tmp_path, share=True, value_hidden=(16, 16)).training_jobs()
    assert jobs[:2] == [(("cfgrl", "awr_t3", "idql"), env, (0,)), (("cfgrl", "awr_t3", "idql"), env, (1,))]
    assert (("awr_t10",), env, (0,)) in jobs and len(jobs) == 4
    assert len(_critic_spec(tmp_path, share=False).training_jobs()) == 8
    from cfgrl.pipeline.spec import critic_group_problem

    spec = _critic_spec(tmp_path, share=True, value_hidden=(16, 16))
    problem = critic_group_problem([spec.methods["cfgrl"], spec.methods["awr_t10"]])
    assert problem == "'awr_t10' trains its critic differently from 'cfgrl'"
