"""Every shipped config file is composed with the real conf/ tree and instantiated."""

from __future__ import annotations

import inspect

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Timer
from omegaconf import OmegaConf

from seq2seq.config import CONFIG_DIR, FILLED_IN_BY_TRAINING, unset_keys
from seq2seq.errors import InputError
from seq2seq.models.search import DEFAULT_ALPHA, DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.padding import PaddingStrategy
from seq2seq.sweeps.optuna_sweeper import StudySweeper
from seq2seq.sweeps.search_space import split_overrides
from seq2seq.train import require_settings
from seq2seq.training.module import Seq2SeqModule

OPTIONS = sorted(
    (path.parent.relative_to(CONFIG_DIR).as_posix(), path.stem)
    for path in CONFIG_DIR.rglob("*.yaml")
    if path.parent != CONFIG_DIR and path.parent.name != "hydra"
)
TINY = ["debug=tiny"]


def test_every_group_is_found() -> None:
    groups = {group for group, _ in OPTIONS}
    assert {
        "encoder",
        "decoder",
        "decoder/attention",
        "decoder/init",
        "strategy",
        "device",
        "data",
        "model",
    } <= groups


def build_module(cfg) -> Seq2SeqModule:
    return instantiate(cfg.model, net={"src_vocab_size": 30, "tgt_vocab_size": 31})


@pytest.mark.parametrize("group,option", OPTIONS, ids=lambda v: v)
def test_option_composes_and_instantiates(group: str, option: str, compose_config) -> None:
    overrides = [f"{group}={option}"]
    if group == "decoder/attention" and option in ("dot", "scaled_dot"):
        overrides += ["decoder.hidden_size=32"]  # the tiny bi-LSTM's memory: 2 x 16
    cfg = compose_config(TINY + overrides)
    # A corpus of one's own (data=parallel, data=tatoeba and the experiments on it) names no folder.
    given = {
        "data.path": CONFIG_DIR.parent / "data" / "bundled",
        "data.src_lang": "src",
        "data.tgt_lang": "tgt",
    }
    unset = [key for key in unset_keys(cfg) if key not in FILLED_IN_BY_TRAINING]
    if unset:
        assert set(unset) <= set(given), unset
        cfg = compose_config(TINY + overrides + [f"{key}={given[key]}" for key in unset])
    require_settings(cfg)

    module = build_module(cfg)
    assert isinstance(module.net, Seq2Seq)
    assert isinstance(module.net.padding, PaddingStrategy)
    module.configure_optimizers()
    datamodule = instantiate(cfg.data)
    assert datamodule.src_lang and datamodule.tgt_lang
    for callback in cfg.callbacks.values():
        assert isinstance(instantiate(callback), L.Callback)
    if group == "device" and cfg.device.accelerator == "gpu" and not torch.cuda.is_available():
        return  # the GPU trainer can only be built where there is a GPU
    trainer = instantiate(cfg.trainer, logger=[instantiate(c) for c in cfg.logger.values()], callbacks=[])
    assert isinstance(trainer, L.Trainer)


def test_unset_mandatory_settings_are_named_before_anything_runs(compose_config) -> None:
    """`???` values stop a run with the keys to give; the vocabulary sizes that training fills in do not."""
    require_settings(compose_config(TINY))
    with pytest.raises(
        InputError, match=r"leaves data\.path unset .*add data\.path=\.\.\. to the command line"
    ):
        require_settings(compose_config(TINY + ["experiment=tatoeba_lstm"]))
    cfg = compose_config(TINY + ["data=parallel", "data.path=D"])
    assert unset_keys(cfg) == ["data.src_lang", "data.tgt_lang", *FILLED_IN_BY_TRAINING]


def test_unknown_group_option_lists_the_choices(compose_config) -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match=r"(?s)lstmm.*Available options.*attention.*gru.*lstm"):
        compose_config(["encoder=lstmm"])


def test_model_components_follow_the_config(compose_config) -> None:
    cfg = compose_config(
        TINY
        + [
            "encoder=gru",
            "decoder=gru",
            "decoder/attention=bahdanau",
            "decoder/init=learned",
            "strategy=state_reset",
        ]
    )
    net = build_module(cfg).net
    assert isinstance(net.encoder.rnn, torch.nn.GRU) and net.encoder.rnn.bidirectional
    assert isinstance(net.decoder.rnn, torch.nn.GRU)
    assert type(net.decoder.attention).__name__ == "BahdanauAttention"
    assert type(net.decoder.init).__name__ == "LearnedInit"
    assert type(net.padding).__name__ == "StateResetStrategy" and net.encoder.padding is net.padding
    no_attention = build_module(compose_config(TINY + ["decoder/attention=none"])).net
    assert no_attention.decoder.attention is None


def test_the_configs_search_settings_are_the_searchs_own_defaults(compose_config) -> None:
    """conf/model/seq2seq.yaml restates them for users to see and override; search.py owns them."""
    model = compose_config([]).model
    assert (model.alpha, model.max_len_a, model.max_len_b) == (
        DEFAULT_ALPHA,
        DEFAULT_MAX_LEN_A,
        DEFAULT_MAX_LEN_B,
    )


def test_every_trainer_argument_can_be_set_without_a_plus(compose_config) -> None:
    composed = set(compose_config([]).trainer)
    arguments = set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "logger", "callbacks"}
    assert arguments <= composed  # from trainer/lightning, which seq2seq.config reads off the signature
    ours = set(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml")) - {"defaults", "_target_"}
    assert ours <= arguments, "conf/trainer/default.yaml sets something lightning.Trainer does not take"
    cfg = compose_config(TINY + ["trainer.max_time=00:00:30:00", "trainer.limit_val_batches=3"])
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    assert trainer.limit_val_batches == 3
    assert any(isinstance(callback, Timer) for callback in trainer.callbacks)  # what max_time adds


@pytest.mark.parametrize(
    "overrides,node",
    [
        (["hparams_search=bundled_bleu"], "sweeper"),
        (["hydra/sweeper=optuna", "hydra.sweeper.study_name=fast"], "sweeper"),
        (["hydra/launcher=slurm"], "launcher"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_sweeper_and_launcher_configs_build(overrides: list[str], node: str) -> None:
    """The option test above drops the hydra node; here the sweeper and launcher objects are built."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    built = instantiate(cfg.hydra[node])
    if node == "launcher":
        assert type(built).__name__ == "SlurmLauncher"
        return
    assert isinstance(built, StudySweeper)
    lines = [f"{key}={value}" for key, value in built.params.items()]
    fixed, space = split_overrides(lines, OverridesParser.create())
    assert len(fixed) + len(space) == len(built.params)
    if overrides[0].startswith("hparams_search"):
        assert "model.optimizer.lr" in space and space["model.optimizer.lr"].log


def test_recurrent_models_start_from_the_uniform_bound_and_the_attention_encoder_keeps_its_own(
    compose_config,
) -> None:
    """model.net.param_init is 0.1 by default (issue 24, benchmarks/README.md), with encoder=attention too:
    its Transformer layers keep their own init (`keeps_own_init`), its decoder takes the bound."""
    assert compose_config(TINY).model.net.param_init == 0.1
    cfg = compose_config(TINY + ["encoder=attention"])
    assert cfg.model.net.param_init == 0.1
    net = build_module(cfg).net
    assert net.encoder.keeps_own_init and not getattr(net.decoder, "keeps_own_init", False)
    assert max(p.abs().max() for p in net.decoder.parameters()) <= 0.1
