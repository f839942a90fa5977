"""The catalogs: every file and network read of perfkit lives here, cached.

Models resolve in this order: folders named in ``PERFKIT_MODEL_DIR`` (``os.pathsep``-separated, files named
``org--name_config.json``), then the copies bundled in ``perfkit/models``, then the Hugging Face hub
(``config.json`` only: never weights, never remote code). Hardware systems are the ``hardware/*.yaml`` files
shipped as ``perfkit.hardware``. Listings come from the folders, never from a hand-kept list.
"""
from __future__ import annotations

import json
import logging
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from .errors import NotFoundError, PerfkitError, SpecError, choices_text
from .specs import HardwareSpec, ModelSpec, ServingProfile

log = logging.getLogger(__name__)

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HARDWARE_ID = re.compile(r"^[a-z0-9_]{1,64}$")


def _config_filename(model_id: str) -> str:
    return model_id.replace("/", "--") + "_config.json"


@cache
def _bundled_configs() -> dict[str, str]:
    """Bundled model id -> file name in ``perfkit/models``."""
    folder = resources.files("perfkit.models")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith("_config.json"):
            out[entry.name[: -len("_config.json")].replace("--", "/", 1)] = entry.name
    return out


@cache
def _aliases() -> dict[str, str]:
    path = resources.files("perfkit.models") / "aliases.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def list_models() -> list[str]:
    """Model ids bundled with perfkit and those in the folders of ``PERFKIT_MODEL_DIR`` (more resolve from
    the Hugging Face hub when online).

    >>> "meta-llama/Llama-3.1-70B" in list_models()
    True
    """
    return sorted({*_bundled_configs(), *_local_model_ids()})


def _local_model_ids() -> list[str]:
    """Ids of the ``org--name_config.json`` files in the ``PERFKIT_MODEL_DIR`` folders (read on every call:
    the variable may change)."""
    out = []
    for folder in filter(None, os.environ.get("PERFKIT_MODEL_DIR", "").split(os.pathsep)):
        for path in Path(folder).glob("*_config.json") if Path(folder).is_dir() else ():
            model_id = path.name[: -len("_config.json")].replace("--", "/", 1)
            if _MODEL_ID.match(model_id) and ".." not in model_id:
                out.append(model_id)
    return out


def check_model_id(model_id) -> str:
    """Return ``model_id`` if it has the ``org/name`` form of a hub id; a path or URL is an error."""
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id) or ".." in model_id:
        raise PerfkitError(
            f"model_id {model_id!r} is not a model id of the form 'org/name' (paths and URLs are not "
            f"accepted); bundled models: {', '.join(list_models())}",
            field="model_id",
        )
    return model_id


def canonical_model_id(model_id: str) -> str:
    """The bundled id an alias (an instruct or FP8 variant of the same architecture) resolves to."""
    return _aliases().get(model_id, model_id)


def model_spec(model_id: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``model_id`` (local folders, then bundled, then the hub)."""
    return _model_spec(check_model_id(model_id))


@cache
def _model_spec(model_id: str) -> ModelSpec:
    config = _load_config(model_id)
    return ModelSpec.from_config(model_id, config)


def _load_config(model_id: str) -> dict:
    filename = _config_filename(model_id)
    for folder in filter(None, os.environ.get("PERFKIT_MODEL_DIR", "").split(os.pathsep)):
        path = Path(folder) / filename
        if path.is_file():
            return _read_json(path.read_text(), str(path))
    bundled = _bundled_configs().get(canonical_model_id(model_id))
    if bundled:
        text = (resources.files("perfkit.models") / bundled).read_text()
        return _read_json(text, bundled)
    return _read_json(_hub_config_text(model_id), f"{model_id} (Hugging Face hub)")


def _read_json(text: str, origin: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{origin}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: config.json must hold an object")
    return data


def _hub_config_text(model_id: str) -> str:
    """Fetch ``config.json`` alone from the hub; offline or unknown ids become a :class:`NotFoundError`."""
    unknown = NotFoundError(
        f"unknown model_id {model_id!r}: not bundled and not reachable on the Hugging Face hub; "
        + choices_text(model_id, list_models()),
        field="model_id",
    )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or not _hub_reachable():
        raise unknown
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo_id=model_id, filename="config.json", etag_timeout=5)
    except Exception as exc:  # offline, gated, missing repo: all mean "not available here"
        log.info("hub lookup of %s failed: %s", model_id, exc)
        raise unknown from None
    return Path(path).read_text()


@cache
def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """One quick TCP probe per process, so that an offline machine answers at once instead of after the
    hub client's retries."""
    import socket

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("//")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=timeout_s).close()
        return True
    except OSError:
        return False


# -- hardware ----------------------------------------------------------------------------------------------


@cache
def _hardware_root():
    """The folder of hardware YAML files that ships with *this* copy of the package: ``perfkit/hardware``
    in an installed wheel, ``hardware/`` beside the package in a source checkout, else the
    ``perfkit.hardware`` resource (a zipped install). The checkout comes before the resource because an
    editable install maps ``perfkit.hardware`` onto the checkout it was installed from, which need not be
    the one imported (a second git worktree, say)."""
    override = os.environ.get("PERFKIT_HARDWARE_DIR")
    if override:  # a calibrated copy written by `perfkit calibrate --out-dir`
        return Path(override)
    here = Path(__file__).resolve().parent
    for folder in (here / "hardware", here.parent / "hardware"):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    return resources.files("perfkit.hardware")


@cache
def _hardware_files() -> dict[str, str]:
    return {e.name[:-5]: e.name for e in _hardware_root().iterdir() if e.name.endswith(".yaml")}


def list_hardware() -> list[str]:
    """Hardware system names in the catalog (the ``hardware/*.yaml`` files).

    >>> "nvidia_h100_hgx" in list_hardware()
    True
    """
    return sorted(_hardware_files())


def hardware_spec(name: str) -> HardwareSpec:
    """The :class:`HardwareSpec` called ``name``; an unknown name is a :class:`NotFoundError`."""
    if not isinstance(name, str) or not _HARDWARE_ID.match(name) or name not in _hardware_files():
        raise NotFoundError(
            f"unknown hardware_config {name!r}; " + choices_text(name, list_hardware()),
            field="hardware_config",
        )
    return _hardware_spec(name)


@cache
def _hardware_spec(name: str) -> HardwareSpec:
    filename = _hardware_files()[name]
    data = yaml.safe_load((_hardware_root() / filename).read_text())
    if not isinstance(data, dict):
        raise SpecError(f"hardware/{filename}: expected a mapping")
    spec = HardwareSpec.from_dict(data, f"hardware/{filename}")
    if spec.name != name:
        raise SpecError(f"hardware/{filename}: name {spec.name!r} differs from the file name")
    return spec


# -- serving-engine profiles -------------------------------------------------------------------------------


@cache
def _serving_root():
    """``perfkit/serving``, or the folder named by ``PERFKIT_SERVING_DIR`` (a calibrated copy)."""
    override = os.environ.get("PERFKIT_SERVING_DIR")
    return Path(override) if override else Path(__file__).resolve().parent / "serving"


@cache
def _profile_files() -> dict[str, str]:
    return {e.name[:-5]: e.name for e in _serving_root().iterdir() if e.name.endswith(".yaml")}


def list_serving_engines() -> list[str]:
    """Serving-engine profiles (``perfkit/serving/*.yaml``): ``generic`` and the engines fitted to data."""
    return sorted(_profile_files())


def serving_profile(name: str = "generic") -> ServingProfile:
    """The :class:`ServingProfile` called ``name``."""
    if not isinstance(name, str) or name not in _profile_files():
        raise PerfkitError(f"unknown serving_engine {name!r}; " + choices_text(name, list_serving_engines()),
                           field="serving_engine")
    return _serving_profile(name)


@cache
def _serving_profile(name: str) -> ServingProfile:
    filename = _profile_files()[name]
    data = yaml.safe_load((_serving_root() / filename).read_text())
    return ServingProfile.from_dict(data, f"serving/{filename}")
