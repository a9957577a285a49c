from __future__ import annotations

from pathlib import Path

from satseg.config import Settings, load_params


def test_home_relocates_all_state(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SATSEG_HOME", str(tmp_path / "elsewhere"))
    s = Settings()
    for p in (s.inbox, s.quarantine, s.raw, s.processed, s.models, s.predictions, s.reports):
        assert p.is_relative_to(tmp_path / "elsewhere")
    assert s.tracking_uri.startswith("file://") and "elsewhere/mlruns" in s.tracking_uri
    assert s.dvc_remote_url == str(tmp_path / "elsewhere" / "dvc-remote")


def test_default_home_is_var_relative_to_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SATSEG_HOME", raising=False)
    assert Settings().home == tmp_path / "var"


def test_dotenv_and_typed_values(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SATSEG_HOME", raising=False)
    (tmp_path / ".env").write_text(
        "SATSEG_HOME=/tmp/from-dotenv\nSATSEG_PROMOTION_MARGIN=0.02\n"
        "SATSEG_MLFLOW_URI=http://127.0.0.1:5000\n"
    )
    s = Settings()
    assert s.home == Path("/tmp/from-dotenv")
    assert s.promotion_margin == 0.02
    assert s.tracking_uri == "http://127.0.0.1:5000"


def test_env_beats_dotenv(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SATSEG_PROMOTION_MARGIN=0.02\n")
    monkeypatch.setenv("SATSEG_PROMOTION_MARGIN", "0.5")
    assert Settings().promotion_margin == 0.5


def test_invalid_value_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import pydantic
    import pytest

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SATSEG_PROMOTION_MARGIN", "not-a-number")
    with pytest.raises(pydantic.ValidationError, match="promotion_margin"):
        Settings()


def test_params_override_merges_with_defaults(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  epochs: 3\n")
    p = load_params(f)
    assert p.train.epochs == 3
    assert p.train.arch == "linknet"  # untouched default
    assert p.preprocess.patch_size == 256


def test_env_example_names_only_real_settings() -> None:
    repo = Path(__file__).resolve().parent.parent
    fields = {f"SATSEG_{k.upper()}" for k in Settings.model_fields}
    names = set()
    text = (repo / ".env.example").read_text()
    # the part before the docker compose section configures satseg itself
    for line in text.split("# docker compose", 1)[0].splitlines():
        line = line.lstrip("# ").strip()
        if line.startswith("SATSEG_") and "=" in line:
            names.add(line.split("=", 1)[0])
    assert names and names <= fields, names - fields
