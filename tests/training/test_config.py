"""src_training.config: typed sections, the committed configs, type-checked --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_lungkd.errors import TrainingError
from src_training.config import AugmentConfig, TrainConfig, load_config, model_spec

CONFIGS = Path(__file__).resolve().parents[2] / "src_training" / "configs"


def test_config_defaults_overrides_and_errors(tmp_path):
    cfg = load_config(
        "src_training/configs/student_kd.yaml",
        ["optim.epochs=3", "teacher=null", "data.crop_size=96"],
    )
    assert cfg.optim.epochs == 3 and cfg.teacher is None and cfg.data.crop_size == 96
    assert cfg.distill.response == 0.5 and cfg.split.endswith("split.json")
    assert model_spec(cfg).encoder == "resnet18"
    assert model_spec(load_config("src_training/configs/teacher.yaml")).encoder == "resnet152"
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {epochz: 3}\n")
    with pytest.raises(TrainingError, match="epochz"):
        load_config(bad)
    with pytest.raises(TrainingError, match="unknown key"):
        load_config(None, ["data.nope=1"])
    off = tmp_path / "off.yaml"
    off.write_text("augment: null\n")
    assert load_config(off).augment is None


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_committed_config_loads_into_typed_sections(path):
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.name == path.stem
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.optim.epochs, int)
    assert isinstance(cfg.distill.stages, tuple) and all(
        isinstance(s, int) for s in cfg.distill.stages
    )
    assert cfg.augment is None or isinstance(cfg.augment, AugmentConfig)
    assert cfg.to_dict()["data"]["batch_size"] == cfg.data.batch_size  # plain data for checkpoints


def test_a_good_override_sets_the_value_with_the_fields_type():
    cfg = load_config(
        CONFIGS / "tiny_student_kd.yaml",
        [
            "optim.lr=2",  # an integer for a float field becomes a float
            "optim.weight_decay=1e-3",  # YAML 1.1 reads this as text; the field makes it a number
            "optim.amp=true",
            "data.batch_size=8",
            "distill.stages=[2, 3]",
            "out=2024",  # a text field keeps the text, not the number YAML would read
            "encoder=resnet34",
            "tensorboard=yes",
            "augment.flip_p=0.25",
        ],
    )
    assert cfg.optim.lr == 2.0 and type(cfg.optim.lr) is float
    assert cfg.optim.weight_decay == pytest.approx(1e-3) and type(cfg.optim.weight_decay) is float
    assert cfg.optim.amp is True and cfg.data.batch_size == 8 and type(cfg.data.batch_size) is int
    assert cfg.distill.stages == (2, 3) and cfg.out == "2024" and cfg.encoder == "resnet34"
    assert cfg.tensorboard is True and cfg.augment.flip_p == 0.25
    assert load_config(None, ["augment=null"]).augment is None


@pytest.mark.parametrize(
    "override, sentence",
    [
        ("optim.epochs=three", "Config value optim.epochs must be an integer, not 'three'."),
        ("optim.epochs=2.5", "Config value optim.epochs must be an integer, not 2.5."),
        ("data.pos_fraction=half", "Config value data.pos_fraction must be a number, not 'half'."),
        ("optim.amp=1", "Config value optim.amp must be true or false, not 1."),
        ("name=null", "Config value name must be text, not None."),
        (
            "distill.stages=[a]",
            "Config value distill.stages must be a list of integers, not ['a'].",
        ),
        ("data=3", "Config value data must be a section of key: value, not 3."),
    ],
)
def test_a_wrong_type_is_one_sentence_naming_key_type_and_value(override, sentence):
    with pytest.raises(TrainingError) as err:
        load_config(CONFIGS / "tiny_student_kd.yaml", [override])
    assert str(err.value) == sentence


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("data.nope=1", r"^Config override data\.nope: unknown key 'nope' \(known: crop_size, "),
        (
            "optimm.lr=1",
            r"^Config override optimm\.lr: 'optimm' is an unknown key or not a section",
        ),
        ("epochs=3", r"^Config override epochs: unknown key 'epochs' \(known: name, model, "),
        ("optim", r"^Config override 'optim' must look like key\.sub=value\.$"),
    ],
)
def test_an_unknown_section_or_key_is_one_sentence(override, pattern):
    with pytest.raises(TrainingError, match=pattern) as err:
        load_config(CONFIGS / "tiny_student_kd.yaml", [override])
    assert "\n" not in str(err.value)


def test_a_files_unknown_key_and_wrong_type_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {crop_size: big}\n")
    with pytest.raises(TrainingError, match=r"data\.crop_size must be an integer, not 'big'"):
        load_config(bad)
    bad.write_text("distil: {response: 1.0}\n")
    with pytest.raises(TrainingError, match=r"unknown key distil \(known keys: name, "):
        load_config(bad)
    bad.write_text("augment: null\n")
    with pytest.raises(TrainingError, match="augment section is off"):
        load_config(bad, ["augment.flip_p=0.5"])
