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
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .catalog_checks import check_hardware, check_model, check_model_config, check_number, check_profile
from .errors import CatalogError, NotFoundError, PerfkitError, SpecError, choices_text
from .specs import HardwareSpec, ModelSpec, ServingProfile, TransferProfile, _check_keys

log = logging.getLogger(__name__)

_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_HARDWARE_ID = re.compile(r"[a-z0-9_]{1,64}")
#: The model-id pattern as JSON Schema writes it (``/openapi.json`` carries it; the server enforces it). It
#: ends in ``(?![\s\S])`` (nothing follows), not ``$``, which in Python also matches before a final newline.
MODEL_ID_PATTERN = "^" + _MODEL_ID.pattern + r"(?![\s\S])"

#: A catalog file larger than this is refused unread (the largest bundled one is a few KiB).
MAX_FILE_BYTES = 1 << 20
#: How long a failed hub look-up is remembered, and how many are (a bounded negative cache).
HUB_NEGATIVE_TTL_S = 300.0
HUB_CACHE_SIZE = 512
#: The hub's connect/read timeout, and the deadline of one look-up as the server waits for it.
HUB_TIMEOUT_S = float(os.environ.get("PERFKIT_HUB_TIMEOUT_S", "5"))


def _config_filename(model_id: str) -> str:
    return model_id.replace("/", "--") + "_config.json"


def _fresh(exc: PerfkitError) -> PerfkitError:
    """A new exception like a cached one (re-raising one object would grow its traceback each time)."""
    return type(exc)(exc.message, field=exc.field)


def _read_text(entry, origin: str) -> str:
    """A catalog file's text, refused unread past :data:`MAX_FILE_BYTES`; errors name ``origin``, not the path."""
    try:
        with entry.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{origin}: the file cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"{origin}: the file is larger than {MAX_FILE_BYTES // 1024} KiB, refused unread")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{origin}: the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class _CatalogLoader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted ``1e-08`` (no dot) as text; the catalog means a number, as YAML 1.2 does.
    Quoted numbers stay text (and are refused by the checks)."""


_CatalogLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _read_yaml(text: str, origin: str):
    try:
        return yaml.load(text, Loader=_CatalogLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SpecError(f"{origin}: not valid YAML ({getattr(exc, 'problem', None) or 'parse error'}{where})") from None


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
            if _MODEL_ID.fullmatch(model_id) and ".." not in model_id:
                out.append(model_id)
    return out


def _model_dirs() -> list[Path]:
    return [Path(f) for f in os.environ.get("PERFKIT_MODEL_DIR", "").split(os.pathsep) if f]


def check_model_id(model_id) -> str:
    """Return ``model_id`` if it has the ``org/name`` form of a hub id; a path or URL is an error."""
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id) or ".." in model_id:
        raise PerfkitError(
            f"model_id {model_id[:120] if isinstance(model_id, str) else model_id!r} is not a model id of the "
            f"form 'org/name' (paths and URLs are not accepted); bundled models: {', '.join(list_models())}",
            field="model_id",
        )
    return model_id


def canonical_model_id(model_id: str) -> str:
    """The bundled id an alias (an instruct or FP8 variant of the same architecture) resolves to."""
    return _aliases().get(model_id, model_id)


def model_spec(model_id: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``model_id`` (local folders, then bundled, then the hub)."""
    found = _model_spec(check_model_id(model_id))
    if found is None:  # neither local nor bundled: ask the hub (bounded, with a deadline, failures remembered)
        found = _hub_lookup(model_id)
    if isinstance(found, PerfkitError):
        raise _fresh(found)
    return found


@lru_cache(maxsize=1024)
def _model_spec(model_id: str) -> ModelSpec | PerfkitError | None:
    """The spec from a local or bundled config (or its error: a broken file is parsed once), None if neither."""
    try:
        text = _local_or_bundled_text(model_id)
        return None if text is None else _build_model(model_id, text)
    except PerfkitError as exc:
        return CatalogError(exc.message, field=exc.field)


def _local_or_bundled_text(model_id: str) -> str | None:
    filename = _config_filename(model_id)
    for folder in _model_dirs():
        path = folder / filename
        if path.is_file():
            return _read_text(path, f"model {model_id!r} (config.json in PERFKIT_MODEL_DIR)")
    bundled = _bundled_configs().get(canonical_model_id(model_id))
    if bundled:
        return _read_text(resources.files("perfkit.models") / bundled, f"model {model_id!r} (bundled config.json)")
    return None


def _build_model(model_id: str, text: str) -> ModelSpec:
    config = _read_json(text, f"model {model_id!r}")
    check_model_config(model_id, config)
    spec = ModelSpec.from_config(model_id, config)
    check_model(spec)
    return spec


def _read_json(text: str, origin: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{origin}: config.json is not valid JSON ({exc.msg} at line {exc.lineno} column "
                        f"{exc.colno})") from None
    except (RecursionError, ValueError):
        raise SpecError(f"{origin}: config.json is not valid JSON (nested too deeply or a huge number)") from None
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: config.json must hold an object")
    return data


def _unknown_model(model_id: str, why: str) -> NotFoundError:
    return NotFoundError(f"unknown model_id {model_id!r}: not bundled and {why}; "
                         + choices_text(model_id, list_models()), field="model_id")


#: model id -> how many times its remembered failure expired and was retried (bounded like the cache).
_HUB_RETRIES: OrderedDict = OrderedDict()


def _hub_lookup(model_id: str) -> ModelSpec | PerfkitError:
    """The hub's answer for ``model_id``: a failure is remembered for :data:`HUB_NEGATIVE_TTL_S` seconds from
    when it happened, then asked again."""
    retries = _HUB_RETRIES.get(model_id, 0)
    found, at = _hub_model_spec(model_id, retries)
    if isinstance(found, PerfkitError) and time.monotonic() - at > HUB_NEGATIVE_TTL_S:
        _HUB_RETRIES[model_id] = retries + 1
        _HUB_RETRIES.move_to_end(model_id)
        while len(_HUB_RETRIES) > HUB_CACHE_SIZE:
            _HUB_RETRIES.popitem(last=False)
        found, at = _hub_model_spec(model_id, retries + 1)
    return found


@lru_cache(maxsize=HUB_CACHE_SIZE)
def _hub_model_spec(model_id: str, retry: int) -> tuple[ModelSpec | PerfkitError, float]:
    """A hub model's spec or its error, and when it was fetched (``retry``: part of the key only, so that an
    expired failure is fetched anew)."""
    del retry
    try:
        return _build_model(model_id, _hub_config_text(model_id)), time.monotonic()
    except HubBusy:  # about the server's load, not about this id: raised, so not remembered
        raise
    except PerfkitError as exc:
        return exc, time.monotonic()


class HubBusy(NotFoundError):
    """Every hub look-up slot is taken: answered at once rather than waiting (not cached)."""


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _hub_config_text(model_id: str) -> str:
    """Fetch ``config.json`` alone from the hub; offline or unknown ids become a :class:`NotFoundError`."""
    if _hub_offline():
        raise _unknown_model(model_id, "the Hugging Face hub is off (HF_HUB_OFFLINE)")
    return _hub().config_text(model_id)


class HubClient:
    """Hub look-ups on a few threads of their own, each with a deadline.

    A hub that accepts connections and never answers then holds at most ``threads`` threads, all of them
    this client's: a server thread waits at most ``timeout_s`` for an answer, and when every slot is taken a
    look-up fails at once instead of queueing behind the stuck ones.
    """

    def __init__(self, threads: int = 2, timeout_s: float = HUB_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="perfkit-hub")
        self._slots = threading.BoundedSemaphore(threads)

    def config_text(self, model_id: str) -> str:
        if not self._slots.acquire(blocking=False):
            raise HubBusy(f"unknown model_id {model_id!r}: not bundled, and every Hugging Face hub look-up "
                          "is busy; try again shortly. " + choices_text(model_id, list_models()), field="model_id")
        future = self._pool.submit(self._fetch, model_id)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise _unknown_model(model_id, f"the Hugging Face hub did not answer within {self.timeout_s:g} s") from None

    def _fetch(self, model_id: str) -> str:
        if not _hub_reachable():
            raise _unknown_model(model_id, "the Hugging Face hub is not reachable")
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(repo_id=model_id, filename="config.json", etag_timeout=self.timeout_s)
        except Exception as exc:  # offline, gated, missing repo: all mean "not available here"
            log.info("hub lookup of %s failed: %s", model_id, exc)
            raise _unknown_model(model_id, "not found on the Hugging Face hub") from None
        return _read_text(Path(path), f"model {model_id!r} (config.json from the Hugging Face hub)")


@cache
def _hub() -> HubClient:
    return HubClient()


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
    except (OSError, ValueError):
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
        if not Path(override).is_dir():
            raise CatalogError("PERFKIT_HARDWARE_DIR is set but names no folder; unset it or point it at a "
                                 "folder of hardware YAML files", field="hardware_config")
        return Path(override)
    here = Path(__file__).resolve().parent
    for folder in (here / "hardware", here.parent / "hardware"):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    return resources.files("perfkit.hardware")


@cache
def _hardware_files() -> dict[str, str]:
    files = {e.name[:-5]: e.name for e in _hardware_root().iterdir() if e.name.endswith(".yaml")}
    if not files:
        raise CatalogError("the hardware catalog folder holds no .yaml file", field="hardware_config")
    return files


def list_hardware() -> list[str]:
    """Hardware system names in the catalog (the ``hardware/*.yaml`` files).

    >>> "nvidia_h100_hgx" in list_hardware()
    True
    """
    return sorted(_hardware_files())


def hardware_spec(name: str) -> HardwareSpec:
    """The :class:`HardwareSpec` called ``name``; an unknown name is a :class:`NotFoundError`."""
    if not isinstance(name, str) or not _HARDWARE_ID.fullmatch(name) or name not in _hardware_files():
        shown = name[:80] if isinstance(name, str) else name
        raise NotFoundError(
            f"unknown hardware_config {shown!r}; " + choices_text(shown, list_hardware()),
            field="hardware_config",
        )
    found = _hardware_spec(name)
    if isinstance(found, PerfkitError):
        raise _fresh(found)
    return found


@cache
def _hardware_spec(name: str) -> HardwareSpec | SpecError:
    """The spec of one hardware file, or its error (a broken file is read and parsed once)."""
    origin = f"hardware {name!r}"
    try:
        data = _read_yaml(_read_text(_hardware_root() / _hardware_files()[name], origin), origin)
        check_hardware(data, origin)
        spec = HardwareSpec.from_dict(data, origin)
        if spec.name != name:
            raise SpecError(f"{origin}: its name field says {spec.name!r}; it must equal the catalog name")
        return spec
    except SpecError as exc:
        return CatalogError(exc.message, field=exc.field)


# -- serving-engine profiles -------------------------------------------------------------------------------


@cache
def _serving_root():
    """``perfkit/serving``, or the folder named by ``PERFKIT_SERVING_DIR`` (a calibrated copy)."""
    override = os.environ.get("PERFKIT_SERVING_DIR")
    if override and not Path(override).is_dir():
        raise CatalogError("PERFKIT_SERVING_DIR is set but names no folder; unset it or point it at a "
                             "folder of serving-engine YAML files", field="serving_engine")
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
    found = _serving_profile(name)
    if isinstance(found, PerfkitError):
        raise _fresh(found)
    return found


@cache
def _serving_profile(name: str) -> ServingProfile | SpecError:
    """The profile of one serving-engine file, or its error (parsed once)."""
    origin = f"serving profile {name!r}"
    try:
        data = _read_yaml(_read_text(_serving_root() / _profile_files()[name], origin), origin)
        check_profile(data, origin)
        return ServingProfile.from_dict(data, origin)
    except SpecError as exc:
        return CatalogError(exc.message, field=exc.field)


# -- the whole catalog -------------------------------------------------------------------------------------


def catalog_problems() -> list[str]:
    """One message per broken catalog entry (every hardware file, serving profile, bundled and
    ``PERFKIT_MODEL_DIR`` model config); empty when everything loads. Each entry is parsed once per process.

    >>> catalog_problems()
    []
    """
    problems = []
    checks = [(hardware_spec, list_hardware), (serving_profile, list_serving_engines),
              (model_spec, list_models)]
    for load, names in checks:
        try:
            for name in names():
                try:
                    load(name)
                except SpecError as exc:
                    problems.append(exc.message)
        except SpecError as exc:  # a missing catalog folder
            problems.append(exc.message)
    return problems


# -- disaggregated-serving profiles (perfkit/serving/disagg/*.yaml) ---------------------------------------


def transfer_profile(name: str = "generic"):
    """The :class:`perfkit.engine.disagg.TransferProfile` of serving engine ``name``: ``disagg/<name>.yaml``
    under the serving folder (a calibrated copy's, else the bundled one), ``generic`` for an engine without
    one."""
    serving_profile(name)  # an unknown engine is refused as serving_engine
    found = _transfer_profile(name)
    if isinstance(found, PerfkitError):
        raise _fresh(found)
    return found


@cache
def _transfer_profile(name: str):
    origin = f"disaggregated-serving profile {name!r}"
    roots = [_serving_root() / "disagg", Path(__file__).resolve().parent / "serving" / "disagg"]
    path = next((r / f"{n}.yaml" for n in (name, "generic") for r in roots if (r / f"{n}.yaml").is_file()), None)
    try:
        if path is None:
            raise SpecError(f"{origin}: no disagg/{name}.yaml or disagg/generic.yaml in the serving folder")
        data = _read_yaml(_read_text(path, origin), origin)
        if not isinstance(data, dict):
            raise SpecError(f"{origin}: expected a mapping of fields, got {type(data).__name__}")
        scales = ("prefill_queue_scale", "prefill_pass_scale", "decode_step_scale", "prefill_max_tokens")
        _check_keys(data, {"name", "kv_transfer_overhead_s", "kv_transfer_efficiency", *scales, "source"}, origin)
        check_number(data["kv_transfer_overhead_s"], f"{origin}: kv_transfer_overhead_s", "ge0", high=10.0)
        check_number(data["kv_transfer_efficiency"], f"{origin}: kv_transfer_efficiency", "frac")
        check_number(data["prefill_queue_scale"], f"{origin}: prefill_queue_scale", "ge0", high=100.0)
        for key in scales[1:3]:
            check_number(data[key], f"{origin}: {key}", "range", 0.05, 20.0)
        check_number(data["prefill_max_tokens"], f"{origin}: prefill_max_tokens", "range", 1.0, 1 << 24)
        return TransferProfile(name=str(data["name"]), source=str(data["source"]),
                               **{k: float(data[k]) for k in ("kv_transfer_overhead_s", "kv_transfer_efficiency",
                                                              *scales)})
    except SpecError as exc:
        return CatalogError(exc.message, field=exc.field)
