import pytest

from codetune.config import expand_grid, load_experiment, parse_override, preset_names
from codetune.errors import ConfigError


def test_presets_mirror_the_study():
    assert {"quick", "rank", "scale", "lang"} <= set(preset_names())
    rank = load_experiment("rank")
    assert rank.grid == {"lora.r": [4, 16, 64]}
    assert (rank.base.train.epochs, rank.base.train.lr, rank.base.lora.alpha, rank.base.lora.dropout) == (
        3,
        1e-4,
        32,
        0.1,
    )
    assert rank.base.data.train_size == 200
    assert load_experiment("scale").grid == {
        "data.train_size": [50, 150, 300],
        "data.sampling": ["random", "stratified"],
    }
    assert load_experiment("lang").grid == {"data.language": ["python", "java", "javascript"]}
    assert [s.label for s in expand_grid(rank)] == ["Base model", "Rank 4", "Rank 16", "Rank 64"]


def test_overrides_set_values_and_make_axes():
    exp = load_experiment(
        "rank", ["seed=[0,1,2]", "train.lr=1e-3", "lora.r=8", "lora.target_modules=[q_proj,v_proj]"]
    )
    assert exp.grid == {"seed": [0, 1, 2]}
    assert exp.base.train.lr == 1e-3 and exp.base.lora.r == 8
    assert exp.base.lora.target_modules == ["q_proj", "v_proj"]
    specs = expand_grid(exp)
    assert len(specs) == 4 and len({s.run_id for s in specs}) == 4
    # Greedy generation ignores the seed: the three seeds share one base-model run.
    assert [s.label for s in specs].count("Base model") == 1


def test_run_id_is_stable_and_ignores_thread_count():
    a = expand_grid(load_experiment("quick"))
    b = expand_grid(load_experiment("quick", ["threads=1"]))
    assert [s.run_id for s in a] == [s.run_id for s in b]
    c = expand_grid(load_experiment("quick", ["seed=5"]))
    assert [s.run_id for s in a] != [s.run_id for s in c]


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"unknown key `lora\.rank`.*did you mean `lora\.r`"):
        load_experiment("rank", ["lora.rank=4"])


def test_unknown_key_in_yaml_file(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("name: x\nbase:\n  train:\n    epocs: 2\n")
    with pytest.raises(ConfigError, match=r"unknown key `base\.train\.epocs` \(did you mean `epochs`"):
        load_experiment(str(f))


def test_bad_type_and_empty_axis_are_reported_together(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("name: x\nbase:\n  lora: {r: many}\ngrid:\n  seed: []\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(str(f))
    msg = str(info.value)
    assert "lora.r" in msg and "valid integer" in msg


def test_empty_axis(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("name: x\ngrid:\n  seed: []\n")
    with pytest.raises(ConfigError, match="grid axis `seed` is empty"):
        load_experiment(str(f))


def test_bad_axis_value_and_unknown_preset():
    with pytest.raises(ConfigError, match="data.language"):
        load_experiment("lang", ["data.language=[python, cobol]"])
    with pytest.raises(ConfigError, match="unknown preset 'rnak'.*did you mean 'rank'"):
        load_experiment("rnak")


def test_yaml_scientific_notation_is_a_number():
    assert parse_override("train.lr=1e-4") == ("train.lr", 1e-4)
    assert load_experiment("quick", ["train.lr=5e-5"]).base.train.lr == 5e-5


def test_yaml_file_can_start_from_a_preset(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("preset: rank\nbase:\n  data: {train_size: 20}\n")
    exp = load_experiment(str(f))
    assert exp.name == "rank" and exp.base.data.train_size == 20 and exp.grid == {"lora.r": [4, 16, 64]}


def test_execution_fields_leave_the_run_id_alone():
    from codetune.config import execution_keys

    base = [s.run_id for s in expand_grid(load_experiment("quick"))]
    for item in (
        "train.workers=1",
        "train.compile=true",
        "train.micro_batch_tokens=512",
        "threads=1",
        "generate.batch_size=4",
        "device=cpu",
    ):
        assert [s.run_id for s in expand_grid(load_experiment("quick", [item]))] == base, item
    # What defines the result still changes it.
    for item in ("train.lr=1e-3", "lora.alpha=8", "generate.max_new_tokens=10", "eval.ci_level=0.9"):
        assert [s.run_id for s in expand_grid(load_experiment("quick", [item]))] != base, item
    assert {"threads", "train.workers", "train.compile", "train.micro_batch_tokens"} <= set(execution_keys())
    assert "train.lr" not in execution_keys() and "seed" not in execution_keys()


def test_legacy_run_ids_are_the_old_formulas():
    import hashlib
    import json

    from codetune.config import execution_keys

    def digest(d):
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    cfg = expand_grid(load_experiment("quick", ["eval.benchmark_limit=5"]))[1].config
    d = cfg.model_dump(mode="json")
    # Fields added after ids were published (FIM, infilling) are no part of any id at their defaults.
    for section, key in (("data", "fim_rate"), ("data", "fim_mode"), ("data", "fim_split")):
        d[section].pop(key)
    for section, key in (("eval", "infilling"), ("eval", "infilling_limit")):
        d[section].pop(key)
    d["eval"].pop("extra_tests")  # eval.extra_tests (issue 22): at its default, no part of any id
    d["eval"].pop("efficiency")  # likewise eval.efficiency and data.decontaminate (issue 22)
    d["data"].pop("decontaminate")
    # Before benchmark execution: no eval.benchmark* fields, no `baseline` (whatever they are set to now).
    d.pop("baseline")
    for key in ("benchmark", "benchmark_limit", "benchmark_max_new_tokens", "benchmark_timeout_s"):
        d["eval"].pop(key)
    before_exec_split = json.loads(json.dumps(d))
    d["threads"] = None  # popped below with every execution key
    for key in execution_keys():
        *parents, leaf = key.split(".")
        cur = d
        for part in parents:
            cur = cur[part]
        cur.pop(leaf)
    d.pop("ray")  # a section of execution fields only: popped whole
    before_exec_split.pop("threads")
    before_exec_split["train"].pop("checkpoint_every")
    for key in ("executor", "ray", "tracking"):  # added after the execution split: no old id had them
        before_exec_split.pop(key)
    assert cfg.legacy_run_ids() == [digest(d), digest(before_exec_split)]
    assert cfg.run_id() not in cfg.legacy_run_ids()
    # The rank preset's first cell: the id its directory had before #17 (measured on that code).
    assert expand_grid(load_experiment("rank"))[1].config.legacy_run_ids()[0] == "502e6aa349"


def test_fim_and_infilling_fields_enter_the_run_id_only_where_they_change_the_result():
    from codetune.config import RunConfig, baseline_config

    # The default config's id, measured before the FIM and infilling fields existed.
    assert RunConfig().run_id() == "47542e5468"
    quick = expand_grid(load_experiment("quick"))
    base = [s.run_id for s in quick]
    legacy = [s.config.legacy_run_ids() for s in quick]
    for item in (
        "data.fim_rate=0",
        "data.fim_mode=spm",  # no FIM examples: the layout is never used
        "data.fim_split=line",
        "eval.infilling=none",
        "eval.infilling_limit=3",  # no infilling set to limit
    ):
        specs = expand_grid(load_experiment("quick", [item]))
        assert [s.run_id for s in specs] == base, item
        assert [s.config.legacy_run_ids() for s in specs] == legacy, item

    def ids(*items: str) -> list[str]:
        return [s.run_id for s in expand_grid(load_experiment("quick", list(items))) if not s.config.baseline]

    fim = ids("data.fim_rate=0.5")
    assert fim != ids() and ids("data.fim_rate=0.5", "data.fim_mode=spm") != fim
    assert ids("data.fim_rate=0.5", "data.fim_split=line") != fim
    infill = ids("eval.infilling=single_line")
    assert infill != ids() and ids("eval.infilling=single_line", "eval.infilling_limit=3") != infill
    # FIM shapes training only: one base-model run for every FIM rate, the same as without FIM
    grid = expand_grid(load_experiment("quick", ["data.fim_rate=[0.9, 0.5]", "data.fim_mode=both"]))
    baselines = [s for s in grid if s.config.baseline]
    assert len(baselines) == 1 and baselines[0].run_id == quick[0].run_id
    assert baselines[0].config.data.fim_rate == 0 and baselines[0].config.data.fim_mode == "psm"
    cell = RunConfig.model_validate({"data": {"fim_rate": 0.5, "fim_split": "line"}})
    assert baseline_config(cell).data == RunConfig().data


def test_base_model_runs_one_per_test_set():
    from codetune.config import RunConfig

    specs = expand_grid(load_experiment("lang"))
    base = [s for s in specs if s.config.baseline]
    assert [s.label for s in base] == ["Base model (python)", "Base model (java)", "Base model (javascript)"]
    for b in base:
        assert b.config.lora == RunConfig().lora and b.config.train.epochs == RunConfig().train.epochs
        assert b.config.legacy_run_ids() == []
    # The same test set and generation settings give the same base run, whatever the adapters vary.
    rank_base = expand_grid(load_experiment("rank"))[0]
    assert rank_base.config.baseline and rank_base.run_id == base[0].run_id
    scale = expand_grid(load_experiment("scale"))
    assert sum(s.config.baseline for s in scale) == 1
    # Sampling uses the seed, so each seed gets its own base run; what generation does changes it too.
    sampled = expand_grid(load_experiment("quick", ["seed=[0,1]", "generate.n_samples=3"]))
    assert sum(s.config.baseline for s in sampled) == 2
    other = expand_grid(load_experiment("quick", ["generate.max_new_tokens=10"]))[0]
    assert other.run_id != expand_grid(load_experiment("quick"))[0].run_id
    assert expand_grid(load_experiment("quick", ["baseline=false"]))[0].label == "Rank 4"


def test_an_execution_field_cannot_be_a_grid_axis():
    with pytest.raises(ConfigError, match=r"grid axis `train\.workers` sets how a run executes"):
        load_experiment("quick", ["train.workers=[1,2]"])


def test_language_aliases_resolve_and_unknown_ones_are_named():
    assert load_experiment("quick", ["data.language=js"]).base.data.language == "javascript"
    with pytest.raises(ConfigError, match=r"data\.language.*python, java, javascript"):
        load_experiment("quick", ["data.language=cobol"])


def test_config_explain_prints_every_key(capsys):
    from codetune.cli import main
    from codetune.config import describe_keys

    assert main(["config", "--explain"]) == 0
    out = capsys.readouterr().out
    for k in describe_keys():
        assert f"  {k.key}: " in out
        assert k.description.split()[0] in out
    assert out.index("Defines the result") < out.index("train.lr:") < out.index("How a run executes")
    assert out.index("How a run executes") < out.index("train.workers:")
    assert main(["config", "train.workers"]) == 0
    one = capsys.readouterr().out
    assert "train.workers: int = 0" in one and "train.lr:" not in one
    assert main(["config", "train.wokers"]) == 2
    assert "did you mean `train.workers`" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override",
    ["lora.r=true", "seed=false", "train.batch_size=true", "eval.benchmark_limit=true", "lora.alpha=true"],
)
def test_a_boolean_is_not_a_number(override):
    # pydantic's lax mode reads true as 1: lora.r=true trained rank 1.
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"`base\.{key}`: a (whole )?number is needed here, not true/false"):
        load_experiment("quick", [override])


@pytest.mark.parametrize("value", ["inf", ".inf", "nan", "-inf"])
def test_infinite_or_nan_floats_are_rejected(value):
    with pytest.raises(ConfigError, match=r"`base\.train\.epochs`: Input should be a finite number"):
        load_experiment("quick", [f"train.epochs={value}"])
    with pytest.raises(ConfigError, match=r"`base\.eval\.benchmark_timeout_s`: Input should be a finite"):
        load_experiment("quick", [f"eval.benchmark_timeout_s={value}"])


def test_model_shorthand_for_model_name(tmp_path):
    exp = load_experiment("quick", ["model=/some/model"])
    assert exp.base.model.name == "/some/model"
    grid = load_experiment("quick", ["model=[gpt2, /some/model]"])
    assert grid.grid["model.name"] == ["gpt2", "/some/model"] and "model" not in grid.grid
    f = tmp_path / "e.yaml"
    f.write_text("name: e\nbase: {model: gpt2}\ngrid: {model: [gpt2, x]}\n")
    exp = load_experiment(str(f))
    assert exp.base.model.name == "gpt2" and exp.grid == {"model.name": ["gpt2", "x"]}
    assert [s.config.model.name for s in expand_grid(exp) if not s.config.baseline] == ["gpt2", "x"]


def test_a_section_given_one_value_names_its_keys():
    with pytest.raises(
        ConfigError, match=r"`lora` is a section, not a value; set one of its keys, e\.g\. lora\.r="
    ):
        load_experiment("quick", ["lora=8"])


def test_validation_errors_are_one_short_line(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("name: g\nbase: {lora: {alpha: 4}}\ngrid:\n  lora.r: [0, 4]\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(str(f))
    msg = str(info.value)
    # The grid check's message, without pydantic's "Value error, " and the whole config as "(got {...})".
    assert msg.startswith("invalid config: grid axis `lora.r`: Input should be greater than or equal to 1 (got 0)")
    assert "{" not in msg and "Value error" not in msg and "\n" not in msg
    with pytest.raises(ConfigError) as info:
        load_experiment("quick", ["model.name=" + "x" * 300, "lora.dropout=" + "9" * 200])
    assert len(str(info.value)) < 200 and "..." in str(info.value)


def test_malformed_and_binary_yaml_files_are_one_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nbase:\n  lora: {r: [1\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(str(f))
    assert "\n" not in str(info.value)
    assert f"config file {f}:4:1: not valid YAML: expected ',' or ']'" in str(info.value)
    f.write_bytes(b"name: x\n\xff\xfe: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2:1: not UTF-8 text \(byte 0xff"):
        load_experiment(str(f))


def test_efficiency_enters_the_run_id_only_when_on():
    from codetune.config import RunConfig

    quick = expand_grid(load_experiment("quick"))
    off = expand_grid(load_experiment("quick", ["eval.efficiency=false"]))
    assert [s.run_id for s in off] == [s.run_id for s in quick]
    assert [s.config.legacy_run_ids() for s in off] == [s.config.legacy_run_ids() for s in quick]
    on = expand_grid(load_experiment("quick", ["eval.efficiency=true"]))
    assert all(a.run_id != b.run_id for a, b in zip(on, quick))  # new metrics: a new result
    assert RunConfig.model_validate({"eval": {"efficiency": False}}).run_id() == RunConfig().run_id()


def test_decontaminate_enters_the_run_id_only_when_set():
    quick = expand_grid(load_experiment("quick"))
    same = expand_grid(load_experiment("quick", ["data.decontaminate=false"]))
    assert [s.run_id for s in same] == [s.run_id for s in quick]
    assert [s.config.legacy_run_ids() for s in same] == [s.config.legacy_run_ids() for s in quick]
    on = expand_grid(load_experiment("quick", ["data.decontaminate=true"]))
    assert all(a.run_id != b.run_id for a, b in zip(on[1:], quick[1:]))
    # It shapes the training set only: the base-model row is the same run.
    assert on[0].config.baseline and on[0].run_id == quick[0].run_id and not on[0].config.data.decontaminate


def test_extra_tests_enter_the_run_id_only_when_set():
    from codetune.config import RunConfig

    quick = expand_grid(load_experiment("quick"))
    unset = expand_grid(load_experiment("quick", ["eval.extra_tests=null"]))
    assert [s.run_id for s in unset] == [s.run_id for s in quick]
    assert [s.config.legacy_run_ids() for s in unset] == [s.config.legacy_run_ids() for s in quick]
    on = expand_grid(load_experiment("quick", ["eval.extra_tests=tests.jsonl.gz"]))
    assert all(a.run_id != b.run_id for a, b in zip(on, quick))  # a new verdict on every sample
    assert RunConfig().run_id() == "47542e5468"  # the default config's id, from before the field existed
