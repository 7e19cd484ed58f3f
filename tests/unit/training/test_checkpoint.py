import pytest

from codetune.training.checkpoint import Checkpointer


@pytest.mark.parametrize("workers", [1, 2])
def test_checkpoint_resume_matches_uninterrupted_training(train_tiny, tmp_path, monkeypatch, workers):
    overrides = {"train": {"epochs": 2, "lr": 5e-3, "checkpoint_every": 3, "workers": workers}}

    def run(run_dir):
        return train_tiny(overrides, seed=1, checkpoint_dir=run_dir / "checkpoint")

    full = run(tmp_path / "a")
    real_save = Checkpointer.save

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint (step 3 of 8)

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    assert (tmp_path / "b" / "checkpoint" / "state.pt").is_file()
    monkeypatch.setattr(Checkpointer, "save", real_save)
    resumed = run(tmp_path / "b")
    assert resumed.resumed_from_step == 3 and resumed.workers == full.workers == workers
    assert resumed.losses == full.losses  # bit for bit: the workers' gradients are added in a fixed order


def test_checkpointer_saves_every_n_steps_but_not_after_the_last(tmp_path):
    ckpt = Checkpointer(tmp_path / "checkpoint", every=3, total_steps=9)
    assert [n for n in range(1, 10) if ckpt.due(n)] == [3, 6]
    assert not Checkpointer(None, every=3, total_steps=9).due(3)  # no directory: never
    assert not Checkpointer(tmp_path, every=0, total_steps=9).due(3)  # checkpoint_every=0: never
    assert not ckpt.exists()
    assert ckpt.resume(None, None, None, None) == 0  # nothing to resume: start at step 0
