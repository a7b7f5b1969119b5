"""Resolve a model spec (zoo, torchvision, timm, user file) and load a checkpoint safely.

Specs:

- ``se_resnet50``: a zoo name (``edge-se models`` lists them);
- ``torchvision:NAME``: ``torchvision.models.get_model(NAME, weights=None)``;
- ``timm:NAME``: ``timm.create_model(NAME, pretrained=False)`` (needs the ``timm`` extra);
- ``path/to/file.py:factory``: the file is imported by path and ``factory()`` must return an
  ``nn.Module``; the spec is split at the last ``.py:`` so ``C:\\models\\net.py:build`` works.

Nothing is ever downloaded: weights come from ``checkpoint`` (loaded with
``torch.load(weights_only=True)``) or from a seeded random init.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import pickle
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_se import progress
from edge_se.bundle import sha256_file
from edge_se.errors import CheckpointError, ModelSpecError, missing_extra
from edge_se.models.registry import create_model, model_info, unknown_name_error

SOURCES = ("zoo", "torchvision", "timm", "file")
SPEC_FORMS = "a zoo name (see `edge-se models`), torchvision:NAME, timm:NAME or path/to/file.py:factory"
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile
_WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx", ".engine", ".ts")
_user_module_ids = itertools.count()


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: ``source`` is one of :data:`SOURCES`; ``name`` a model name or file path."""

    source: str
    name: str
    factory: str | None = None


@dataclass
class LoadedModel:
    """A resolved model (eval mode) and where its architecture and weights came from."""

    module: Any  # torch.nn.Module (torch is imported lazily)
    spec: str
    source: str
    weights: str
    checkpoint: Path | None = None
    checkpoint_sha256: str | None = None
    default_input_shape: tuple[int, ...] | None = None
    attention_type: str | None = None
    user_file: Path | None = None
    user_file_sha256: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`load_checkpoint` loaded: the file, its sha256, and anything it adjusted."""

    path: Path
    sha256: str
    notes: tuple[str, ...] = ()


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def parse_spec(spec: str) -> ModelSpec:
    """Split a spec into source, name and factory; raises ModelSpecError for malformed specs."""
    spec = spec.strip() if isinstance(spec, str) else spec
    if not isinstance(spec, str) or not spec:
        raise ModelSpecError(f"expected a model spec, found {spec!r}; give {SPEC_FORMS}")
    for source in ("torchvision", "timm"):
        if spec.startswith(source + ":"):
            name = spec[len(source) + 1:].strip()
            if not name:
                raise ModelSpecError(f"'{spec}' names no model; expected {source}:NAME, e.g. {source}:resnet18")
            return ModelSpec(source, name)
    cut = spec.lower().rfind(".py:")
    if cut >= 0:
        path, factory = spec[: cut + 3], spec[cut + 4:]
        if not factory.isidentifier():
            raise ModelSpecError(
                f"'{spec}': expected path/to/file.py:factory with factory a Python name, found {factory!r}"
            )
        return ModelSpec("file", path, factory)
    if ":" in spec:
        head = spec.rpartition(":")[0]
        prefix = spec.split(":", 1)[0]
        if len(prefix) > 1 and prefix.isidentifier():
            raise ModelSpecError(f"unknown model source '{prefix}:' in '{spec}'; expected {SPEC_FORMS}")
        raise ModelSpecError(
            f"'{spec}': a model file must be a Python file (.py), found '{Path(head).name}'; expected "
            "path/to/file.py:factory (weights go in --checkpoint)"
        )
    if spec.lower().endswith(".py"):
        raise ModelSpecError(f"'{spec}' names no factory; expected {spec}:FACTORY, a function returning the nn.Module")
    if spec.lower().endswith(_WEIGHT_SUFFIXES) or "/" in spec or "\\" in spec:
        raise ModelSpecError(
            f"'{spec}' looks like a file, not a model spec; expected {SPEC_FORMS} (weights go in --checkpoint)"
        )
    return ModelSpec("zoo", spec)


# --------------------------------------------------------------------------- builders
def _build_zoo(ms: ModelSpec, kwargs: dict) -> tuple[Any, tuple[int, ...] | None, str | None]:
    info = model_info(ms.name)
    shape = info.default_input_shape
    if shape and "in_chans" in kwargs:
        shape = (shape[0], int(kwargs["in_chans"]), *shape[2:])
    return create_model(ms.name, **kwargs), shape, info.attention_type


def _refuse_download_options(ms: ModelSpec, kwargs: dict, options: tuple[str, ...]) -> None:
    bad = sorted(set(kwargs) & set(options))
    if bad:
        raise ModelSpecError(
            f"{ms.source}:{ms.name}: the options {bad} would fetch or load weights outside edge-se; "
            "edge-se never downloads weights: pass a local state_dict with --checkpoint"
        )


def _build_torchvision(ms: ModelSpec, kwargs: dict) -> tuple[Any, tuple[int, ...] | None, str | None]:
    import torchvision

    names = torchvision.models.list_models()
    if ms.name not in names:
        raise unknown_name_error("torchvision", ms.name, names, "torchvision.models.list_models() lists them")
    _refuse_download_options(ms, kwargs, ("weights", "weights_backbone", "pretrained"))
    try:
        module = torchvision.models.get_model(ms.name, weights=None, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelSpecError(f"torchvision:{ms.name} rejected the options {sorted(kwargs)}: {_one_line(e)}") from e
    return module, _torchvision_input_shape(ms.name), None


def _torchvision_input_shape(name: str) -> tuple[int, ...] | None:
    """(1, 3, crop, crop) from the weights' preprocessing recipe (no download); None if it has none."""
    import torchvision

    try:
        transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    except (ValueError, KeyError, AttributeError, TypeError):
        return None
    crop = getattr(transforms, "crop_size", None)
    if not crop:
        return None
    h = crop[0] if isinstance(crop, (list, tuple)) else crop
    w = crop[-1] if isinstance(crop, (list, tuple)) else crop
    return (1, 3, int(h), int(w))


def _build_timm(ms: ModelSpec, kwargs: dict) -> tuple[Any, tuple[int, ...] | None, str | None]:
    try:
        import timm
    except ImportError:
        raise missing_extra("timm", "timm", f"the model spec 'timm:{ms.name}'") from None
    if ms.name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ModelSpecError(
            f"timm:{ms.name} would be fetched from a hub or folder by timm; edge-se never downloads models: "
            "write a file.py:factory that builds it and pass its weights as a state_dict with --checkpoint"
        )
    base, _tag = timm.models.split_model_name_tag(ms.name)
    if not timm.is_model(base):
        raise unknown_name_error("timm", ms.name, timm.list_models(), "timm.list_models() lists them")
    _refuse_download_options(ms, kwargs, ("pretrained", "checkpoint_path", "pretrained_cfg_overlay"))
    try:
        module = timm.create_model(ms.name, pretrained=False, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelSpecError(f"timm:{ms.name} rejected the options {sorted(kwargs)}: {_one_line(e)}") from e
    size = (getattr(module, "pretrained_cfg", None) or {}).get("input_size")
    shape = (1, int(kwargs.get("in_chans", size[0])), *map(int, size[1:])) if size else None
    return module, shape, None


def _import_user_file(path: Path) -> Any:
    """Import ``path`` under a fresh module name (its folder on sys.path while it runs)."""
    stem = re.sub(r"\W", "_", path.stem)
    name = f"edge_se_user_{stem}_{next(_user_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelSpecError(f"{path} cannot be imported as a Python module; expected a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.parent.resolve())
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        del sys.modules[name]
        line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
        for frame in traceback.extract_tb(e.__traceback__):
            if Path(frame.filename).resolve() == path.resolve():
                line = frame.lineno
        where = f" at line {line}" if line else ""
        raise ModelSpecError(
            f"importing {path} failed{where}: {type(e).__name__}: {_one_line(e)}; fix the file (run `python {path}` to see the full error)"
        ) from e
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _user_callables(module: Any) -> list[str]:
    return sorted(
        n for n, v in vars(module).items()
        if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
    )


def _build_file(ms: ModelSpec, kwargs: dict) -> tuple[Any, tuple[int, ...] | None, str | None]:
    from torch import nn

    path = Path(ms.name).expanduser()
    if not path.exists():
        raise ModelSpecError(f"model file {path} does not exist; expected path/to/file.py:{ms.factory}")
    if not path.is_file():
        raise ModelSpecError(f"{path} is not a file; expected path/to/file.py:{ms.factory}")
    if path.suffix.lower() != ".py":
        raise ModelSpecError(f"{path} is not a Python file; expected path/to/file.py:{ms.factory}")
    module = _import_user_file(path)
    factory = getattr(module, ms.factory, None)
    if factory is None:
        found = ", ".join(_user_callables(module)) or "none"
        raise ModelSpecError(f"{path} defines no '{ms.factory}'; callables defined there: {found}")
    if not callable(factory):
        raise ModelSpecError(f"{path}:{ms.factory} is a {type(factory).__name__}, expected a function returning an nn.Module")
    _check_factory_signature(path, ms.factory, factory, kwargs)
    try:
        obj = factory(**kwargs)
    except Exception as e:
        raise ModelSpecError(f"{path}:{ms.factory}() raised {type(e).__name__}: {_one_line(e)}") from e
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        raise ModelSpecError(
            f"{path}:{ms.factory}() returned the class {obj.__name__}, expected an instance; return {obj.__name__}(...)"
        )
    if not isinstance(obj, nn.Module):
        raise ModelSpecError(
            f"{path}:{ms.factory}() returned a {type(obj).__module__}.{type(obj).__qualname__}, expected a torch.nn.Module"
        )
    return obj, None, None


def _check_factory_signature(path: Path, name: str, factory: Callable, kwargs: dict) -> None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    try:
        sig.bind(**kwargs)
    except TypeError:
        needed = [p.name for p in sig.parameters.values()
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in kwargs]
        given = f"with {sorted(kwargs)}" if kwargs else "with no arguments"
        raise ModelSpecError(
            f"{path}:{name}{sig} cannot be called {given} (needs: {', '.join(needed) or 'other options'}); "
            "give its parameters defaults or add a zero-argument factory that calls it"
        ) from None


_BUILDERS = {"zoo": _build_zoo, "torchvision": _build_torchvision, "timm": _build_timm, "file": _build_file}


# --------------------------------------------------------------------------- checkpoints
def _read_checkpoint(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (torch.load: {_one_line(e)})") from e
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path} contains pickled Python objects{what}, and edge-se refuses to execute them "
            "(torch.load weights_only=True); where you trust the file, re-save only the weights with "
            "torch.save(model.state_dict(), path) and pass that file"
        ) from e
    except Exception as e:  # torch.load raises many types (KeyError, EOFError, RuntimeError, ...) on non-checkpoints
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (torch.load failed: {type(e).__name__}: {_one_line(e, 120)}); "
            "expected a file written by torch.save(model.state_dict(), path)"
        ) from e


def _extract_state_dict(obj: Any, path: Path, notes: list[str]) -> dict:
    import torch

    def is_state_dict(d: Any) -> bool:
        return isinstance(d, Mapping) and bool(d) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())

    if is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if is_state_dict(obj.get(key)):
                notes.append(f"used the '{key}' entry of the checkpoint dict")
                return dict(obj[key])
        keys = ", ".join(map(str, list(obj)[:8])) + (", ..." if len(obj) > 8 else "")
        raise CheckpointError(
            f"{path} holds a dict without a state_dict (keys: {keys or 'none'}); expected a state_dict or a dict "
            f"holding one under {' / '.join(repr(k) for k in STATE_DICT_KEYS)}"
        )
    raise CheckpointError(
        f"{path} holds a {type(obj).__name__}, expected a state_dict; save it with torch.save(model.state_dict(), path)"
    )


def _strip_wrapper_prefix(state: dict, model_keys: set[str], notes: list[str]) -> dict:
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in model_keys):
            notes.append(f"stripped the '{prefix}' prefix from {len(state)} checkpoint keys (saved from a wrapped model)")
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _names(keys: list[str], limit: int = 5) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_checkpoint(module: Any, path: str | Path) -> CheckpointInfo:
    """Load a state_dict into ``module`` strictly; raises CheckpointError naming what does not fit.

    Accepts a state_dict or a dict holding one under ``state_dict``/``model``/``model_state_dict``;
    strips a ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix and says so.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; expected a file written by torch.save(model.state_dict(), path)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    notes: list[str] = []
    state = _extract_state_dict(_read_checkpoint(path), path, notes)
    expected = module.state_dict()
    state = _strip_wrapper_prefix(state, set(expected), notes)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_names(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_names(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches ({_names(shapes, 3)})")
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit the model: {'; '.join(problems)}; was it saved from the same "
            "model spec and options (e.g. num_classes)?"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {_one_line(e)}") from e
    for note in notes:
        progress.info(f"note: checkpoint {path.name}: {note}")
    return CheckpointInfo(path=path, sha256=sha256_file(path), notes=tuple(notes))


# --------------------------------------------------------------------------- entry point
#: ``model.source`` of a bundle exported from an ``nn.Module`` passed from Python (the API)
MODULE_SOURCE = "module"
_OPTION_TYPES = (bool, int, float, str)


def check_model_options(options: Mapping[str, Any] | None, where: str = "model options") -> dict[str, Any]:
    """Keyword options for a model builder (``num_classes=10``): names and plain scalar values only.

    They are recorded in the manifest and read back when the reference is rebuilt, so anything but
    a bool, int, float or str (which could carry code or objects) is refused with the key named.
    """
    out: dict[str, Any] = {}
    if options is None:
        return out
    if not isinstance(options, Mapping):
        raise ModelSpecError(f"{where}: expected a table of name = value, got {type(options).__name__}")
    for key, value in options.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ModelSpecError(f"{where}: option name {key!r} is not a Python identifier")
        if not isinstance(value, _OPTION_TYPES):
            raise ModelSpecError(f"{where}: option {key} = {value!r} must be a bool, int, float or string")
        out[key] = value
    return out


def parse_model_option(text: str) -> tuple[str, Any]:
    """``num_classes=10`` -> ``("num_classes", 10)``: ints, floats, true/false, else the string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ModelSpecError(f"--model-option {text!r}: expected NAME=VALUE, e.g. num_classes=10")
    raw = raw.strip()
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return key, value


def from_module(module: Any, checkpoint: str | Path | None = None) -> LoadedModel:
    """A :class:`LoadedModel` for an ``nn.Module`` passed from Python: its own weights (or
    ``checkpoint``'s), eval mode."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ModelSpecError(f"expected an nn.Module or a model spec string, got {type(module).__name__}")
    cls = type(module)
    loaded = LoadedModel(module=module, spec=f"python:{cls.__module__}.{cls.__qualname__}", source=MODULE_SOURCE,
                         weights="the module's own weights (passed from Python)")
    return _with_checkpoint(loaded, checkpoint)


def _with_checkpoint(loaded: LoadedModel, checkpoint: str | Path | None) -> LoadedModel:
    """``loaded`` with ``checkpoint``'s weights loaded (when given) and the module in eval mode."""
    if checkpoint is not None:
        info = load_checkpoint(loaded.module, checkpoint)
        loaded.checkpoint, loaded.checkpoint_sha256 = info.path, info.sha256
        loaded.weights = f"checkpoint {info.path} (sha256 {info.sha256[:16]}...)"
        loaded.notes.extend(info.notes)
    loaded.module.eval()
    return loaded


def resolve_model(spec: str, checkpoint: str | Path | None = None, seed: int = 0, **kwargs: Any) -> LoadedModel:
    """Build the model named by ``spec`` (eval mode), with weights from ``checkpoint`` or a seeded init.

    ``kwargs`` go to the builder (zoo entry point, torchvision/timm constructor, or the user's
    factory), e.g. ``num_classes=10``. The global RNG state is left as it was.
    """
    import torch

    ms = parse_spec(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module, shape, attn = _BUILDERS[ms.source](ms, kwargs)
    loaded = LoadedModel(module=module, spec=spec, source=ms.source, weights=f"random init (seed {seed})",
                         default_input_shape=shape, attention_type=attn)
    if ms.source == "file":
        loaded.user_file = Path(ms.name).resolve()
        loaded.user_file_sha256 = sha256_file(loaded.user_file)
    return _with_checkpoint(loaded, checkpoint)
