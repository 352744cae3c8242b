"""Command-line defaults a help text states are the library's own: commands leave unset options
to the library, so a default lives in one place and the help must not drift from it."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from bcc_edge.commands import export as export_command
from bcc_edge.export import ExportOptions


def stated_defaults(command) -> dict[str, str]:
    """Parameter name -> the '[default: X]' its help states, for options left unset (None)."""
    stated = {}
    for name, parameter in inspect.signature(command).parameters.items():
        info = parameter.default
        match = re.search(r"\[default: ([^\]]+)\]", getattr(info, "help", "") or "")
        if match and info.default is None:
            stated[name] = match.group(1)
    return stated


def test_export_help_states_the_export_options_defaults():
    stated = stated_defaults(export_command.export_command)
    defaults = {f.name: f.default for f in dataclasses.fields(ExportOptions)}
    assert set(stated) == {"io", "qat_epochs", "qat_lr", "calib_per_class", "seed", "review_target", "guard_percentile"}
    for name, text in stated.items():
        assert text == str(defaults[name]), name


def test_calib_help_states_the_calib_default():
    from bcc_edge.calib import DEFAULT_PER_CLASS
    from bcc_edge.commands.calib import calib_make_command

    assert stated_defaults(calib_make_command) == {"per_class": str(DEFAULT_PER_CLASS)}


def test_serve_and_watch_help_state_the_library_defaults():
    from bcc_edge.commands.serve import serve_command
    from bcc_edge.commands.watch import watch_command
    from bcc_edge.device.watch import DEFAULT_SETTLE

    assert stated_defaults(watch_command) == {"settle": str(DEFAULT_SETTLE)}
    pytest.importorskip("fastapi")
    from bcc_edge.device.serve.app import DEFAULT_MAX_UPLOAD_MB, DEFAULT_QUEUE

    assert stated_defaults(serve_command) == {"max_upload_mb": str(DEFAULT_MAX_UPLOAD_MB), "queue": str(DEFAULT_QUEUE)}


@pytest.mark.parametrize("command", ["infer", "count", "selftest", "serve", "watch", "export", "verify", "bench", "calib", "train", "report", "demo", "models"])
def test_no_command_module_loads_training_code_at_import(command):
    import subprocess
    import sys

    code = f"import sys, bcc_edge.commands.{command}; print(sorted(m for m in sys.modules if m.startswith('bcc_edge.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("bcc_edge.data", "bcc_edge.calib", "bcc_edge.train", "bcc_edge.export", "bcc_edge._tf"):
        assert f"'{heavy}'" not in loaded and f"'{heavy}." not in loaded, (command, heavy)


def test_every_training_setting_is_a_train_option():
    """commands/train builds its overrides from the TrainConfig fields by name: each field needs
    its option (or one of the three spelled for the command line)."""
    from bcc_edge.commands.train import train_command
    from bcc_edge.train import TrainConfig

    options = set(inspect.signature(train_command).parameters)
    spelled = {"classes": "classes", "model_kwargs": "model_arg", "use_cache": "no_cache"}
    for field in dataclasses.fields(TrainConfig):
        assert spelled.get(field.name, field.name) in options, field.name


def test_train_help_states_the_train_config_defaults():
    from bcc_edge.commands.train import train_command
    from bcc_edge.train import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default not in (None, dataclasses.MISSING)}
    stated = {k: v.split(";")[0] for k, v in stated_defaults(train_command).items() if k in defaults}
    assert {"distill", "resize_jitter", "epochs", "patience", "interpolation"} <= set(stated)
    for name, text in stated.items():
        value = defaults[name]
        assert text == ({True: "on", False: "off"}[value] if isinstance(value, bool) else str(value)), name
