"""Typed parameters: defaults once, validation naming key and file, and everything built from them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from satseg.config import readme_tables
from satseg.params import (
    DEFAULT_PARAMS,
    SECTIONS,
    Params,
    ParamsError,
    PredictParams,
    PreprocessParams,
    RetrainRun,
    TrainParams,
    default_of,
    load_params,
    overrides_model,
    validate,
)

REPO = Path(__file__).resolve().parent.parent


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_committed_yaml_equals_the_model_defaults() -> None:
    committed = yaml.safe_load(DEFAULT_PARAMS.read_text())
    assert set(committed) == set(SECTIONS)
    for name, section in SECTIONS.items():
        assert set(committed[name]) == set(section.model_fields), name
        for key, value in committed[name].items():
            assert value == default_of(section, key), f"{name}.{key}"
    assert load_params(DEFAULT_PARAMS) == Params()


def test_demo_file_validates_and_keeps_the_other_defaults() -> None:
    demo = load_params(REPO / "include" / "params.demo.yaml")
    assert (demo.train.epochs, demo.train.patience) == (4, 2)
    assert demo.train.arch == default_of(TrainParams, "arch")
    assert demo.predict == Params().predict


def test_partial_file_is_merged_over_the_defaults_and_edits_are_seen(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.yaml", "train:\n  epochs: 3\npredict:\n  threshold: 0.3\n")
    p = load_params(f)
    assert (p.train.epochs, p.train.batch_size, p.predict.threshold) == (3, 8, 0.3)
    assert p.preprocess == PreprocessParams()
    assert load_params(f) is p  # loaded once
    _write(f, "train:\n  epochs: 5\n")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
    assert load_params(f).train.epochs == 5


def test_unknown_key_names_the_key_path_and_the_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "typo.yaml", "train:\n  epochz: 3\n")
    with pytest.raises(ParamsError, match=r"typo\.yaml: train\.epochz: unknown key"):
        load_params(f)
    f = _write(tmp_path / "section.yaml", "trian:\n  epochs: 3\n")
    with pytest.raises(ParamsError, match=r"section\.yaml: trian: unknown key"):
        load_params(f)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("train:\n  epochs: 0\n", r"train\.epochs must be >= 1, got 0"),
        ("train:\n  learning_rate: 0\n", r"train\.learning_rate must be > 0"),
        ("train:\n  arch: fcn\n", r"train\.arch 'fcn': choose one of"),
        ("predict:\n  threshold: 1.5\n", r"predict\.threshold must be < 1"),
        ("predict:\n  precision: fp64\n", r"predict\.precision 'fp64'"),
        ("ingest:\n  scale: log\n", r"ingest\.scale 'log'"),
        ("monitor:\n  correction: holm\n", r"monitor\.correction 'holm'"),
        ("preprocess:\n  png_compression: zstd\n", r"preprocess\.png_compression 'zstd'"),
        ("preprocess:\n  nodata_max: 2\n", r"preprocess\.nodata_max must be <= 1"),
        ("api:\n  health_timeout_s: 0\n", r"api\.health_timeout_s must be > 0"),
        ("train:\n  epochs: many\n", r"train\.epochs: Input should be a valid integer"),
    ],
)
def test_out_of_range_values_are_errors(tmp_path: Path, text: str, match: str) -> None:
    f = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ParamsError, match=match) as err:
        load_params(f)
    assert str(f) in str(err.value)


def test_cross_field_rules() -> None:
    with pytest.raises(ParamsError, match="stride=300 must be <= patch_size=256"):
        validate({"preprocess": {"stride": 300}}, "x.yaml")
    assert validate({"preprocess": {"stride": 128}}).preprocess.stride == 128
    assert validate({"preprocess": {"patch_size": 128}}).preprocess.stride == 128  # null stride
    assert validate({}).preprocess.stride == default_of(PreprocessParams, "patch_size")
    with pytest.raises(ParamsError, match=r"overlap=200 must be <= tile/2 = 128"):
        validate({"predict": {"tile": 256, "overlap": 200}}, "x.yaml")
    assert validate({"predict": {"tile": 512, "overlap": 200}}).predict.overlap == 200
    with pytest.raises(ParamsError, match="bf16 runs on TensorFlow only"):
        validate({"predict": {"runtime": "onnxruntime", "precision": "bf16"}})
    with pytest.raises(ParamsError, match=r"predict\.tile must be >= 32"):
        validate({"predict": {"tile": 16, "overlap": 0}})


def test_a_file_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(_write(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_settings_params_is_typed(settings: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from satseg.config import get_settings, reset_settings_cache

    assert isinstance(settings.params(), Params)
    f = _write(tmp_path / "mine.yaml", "ingest:\n  scale: max\n")
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(f))
    reset_settings_cache()
    assert get_settings().params().ingest.scale == "max"


def test_runtime_objects_take_their_defaults_from_the_sections() -> None:
    from satseg.inference.params import PredictParams as RunPredict
    from satseg.preprocess.patches import PatchParams
    from satseg.training.config import TrainConfig

    assert PatchParams.from_params(PreprocessParams()) == PatchParams()
    assert PatchParams.from_params(PreprocessParams(png_compression="huffman")).png == "deflate"
    assert TrainConfig().model_dump(exclude={"encoder_weights"}) == TrainParams().model_dump()
    run = RunPredict.from_params(Params())
    assert run == RunPredict() and run.scale == default_of(Params().ingest.__class__, "scale")
    resolved = RunPredict.from_params(validate({"ingest": {"bands": [3, 2, 1], "scale": "max"}}))
    assert (resolved.bands, resolved.scale) == ((3, 2, 1), "max")
    own = validate({"ingest": {"scale": "max"}, "predict": {"scale": "none", "bands": [1]}})
    assert (RunPredict.from_params(own).scale, RunPredict.from_params(own).bands) == ("none", (1,))
    with pytest.raises(ParamsError, match="predict options: tile must be >= 32"):
        RunPredict.from_params(Params(), tile=8)


def test_overrides_model_keeps_ranges_and_leaves_unset_keys_out() -> None:
    over = overrides_model(TrainParams)
    assert over(epochs=3).model_dump(exclude_unset=True) == {"epochs": 3}
    assert over().model_dump() == dict.fromkeys(TrainParams.model_fields)
    for bad in ({"epochs": 0}, {"arch": "fcn"}, {"epochz": 1}):
        with pytest.raises(ValueError):
            over(**bad)
    schema = over.model_json_schema()["properties"]["epochs"]
    assert schema["description"] == TrainParams.model_fields["epochs"].description


def test_rest_training_request_is_validated_by_train_params() -> None:
    from satseg.api import training

    req = training.TrainingRequest(epochs=2, dataset="demo")
    assert req.model_dump(exclude_unset=True) == {"epochs": 2, "dataset": "demo"}
    for conf, word in (({"epochs": 0}, "epochs"), ({"epochz": 1}, "epochz")):
        with pytest.raises(training.TrainingError, match=word) as err:
            training.start(conf)
        assert err.value.status == 400


def test_dag_params_come_from_the_models_not_the_params_file(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from satseg.config import reset_settings_cache

    # a worker's file that differs: parsing must not read it
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(_write(tmp_path / "w.yaml", "train: 1\n")))
    reset_settings_cache()
    try:
        bag = DagBag(dag_folder=str(REPO / "dags" / "satseg_retrain.py"))
    finally:
        reset_settings_cache()
    assert bag.import_errors == {}
    params = bag.dags["satseg_retrain"].params
    form = [name for name in TrainParams.model_fields if name in params]
    assert {"arch", "backbone", "epochs", "batch_size", "learning_rate"} <= set(form)
    for name in form:
        assert params[name] == default_of(TrainParams, name), name
        param = params.get_param(name)
        assert param.description == TrainParams.model_fields[name].description
    for name in RetrainRun.model_fields:
        assert params[name] == default_of(RetrainRun, name)
    schema = params.get_param("epochs").schema
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 1000)
    assert params.get_param("arch").schema["enum"] == ["linknet", "unet", "manet"]
    assert params.get_param("learning_rate").schema["exclusiveMinimum"] == 0
    assert params.get_param("dataset").schema["type"] == ["null", "string"]


def test_run_takes_the_workers_file_and_only_what_the_conf_names(
    settings: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from satseg.config import get_settings, reset_settings_cache
    from satseg.training.runner import plan_for_run

    f = _write(tmp_path / "w.yaml", "train:\n  epochs: 7\n  loss: focal\n")
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(f))
    reset_settings_cache()
    form = {**TrainParams().model_dump(), "sweep": None}  # what Airflow fills in
    (cfg,) = plan_for_run(get_settings(), form, {"batch_size": 4, "dataset": "d"})
    assert (cfg["epochs"], cfg["loss"], cfg["batch_size"]) == (7, "focal", 4)
    # the trigger form submits every field pre-filled with the model's defaults: only what
    # the user changed there overrides the worker's file
    (cfg,) = plan_for_run(get_settings(), form, {**TrainParams().model_dump(), "epochs": 12})
    assert (cfg["epochs"], cfg["loss"]) == (12, "focal")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        plan_for_run(get_settings(), form, {"epochs": 0})


def test_cli_options_show_the_model_and_are_validated_by_it(settings: Any) -> None:
    from satseg.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0
    for name in ("epochs", "learning_rate", "arch"):
        assert str(TrainParams.model_fields[name].description) in r.output
    assert "[default: (40)]" in r.output
    r = runner.invoke(app, ["train", "--epochs", "0"])
    assert r.exit_code == 2 and "epochs must be >= 1" in r.output
    r = runner.invoke(app, ["train", "--arch", "fcn"])
    assert r.exit_code == 2 and "arch 'fcn'" in r.output
    r = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "300"})
    assert str(PredictParams.model_fields["overlap"].description) in r.output
    r = runner.invoke(
        app, ["predict", "x.tif", "--tile", "64", "--overlap", "40"], env={"COLUMNS": "300"}
    )
    assert r.exit_code == 2 and "overlap=40 must be <= tile/2 = 32" in r.output


def test_readme_tables_are_generated_from_the_descriptions() -> None:
    readme = (REPO / "README.md").read_text()
    for name in ("settings", *SECTIONS):
        assert f"<!-- table: {name} -->" in readme, name
    assert readme_tables(readme) == readme, (
        "README tables differ from the models: rewrite them with "
        "satseg.config.readme_tables(README.md's text)"
    )
