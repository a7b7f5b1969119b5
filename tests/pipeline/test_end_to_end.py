"""The whole chain on one real bundle, each stage reading only what the stage before it wrote.

export (trained se_digits, real labels) -> quantize fp16 and int8 calibrated from a plain folder of
digit images -> ``build --script-only`` for every shipped recipe (adapted to this model) -> the
runtime on every artifact -> ``validate`` with the accuracy-vs-latency matrix on every backend that
exists here -> ``report``. Nothing downstream is hand-built: the four seams that were silently
broken before ``edge_se/manifest.py`` (cache format, the ``auto`` decision, engine format, the
calibration set format) are each asserted on what the writer actually wrote. The TensorRT-for-RTX
build of such a bundle runs in scripts/ci_trt_rtx.sh (tests/tensorrt/test_trt_rtx.py, end-to-end
case), where TensorRT is installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "export").glob("*.toml"))
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PER_CLASS = 8


def _run(*args) -> None:
    code = main(["-q", *map(str, args)])
    assert code == 0, f"edge-se {' '.join(map(str, args))} exited {code}"


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A trained se_digits bundle with FP16 and INT8 files, calibrated from an image folder."""
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.data.digits import digit_to_image, raw_digits

    root = tmp_path_factory.mktemp("e2e")
    pixels, y = raw_digits()
    images = root / "images"
    for k, name in enumerate(NAMES):
        (images / name).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(y == k)[-PER_CLASS:]):  # the last ones: not the training split's head
            digit_to_image(pixels[i]).save(images / name / f"{j}.png")
    labels = root / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    bundle = root / "bundle"
    _run("export", "se_digits", "--checkpoint", cached_digits_checkpoint("se"), "--labels", labels, "--images", images,
         "--out", bundle)
    _run("quantize", bundle, "--precision", "fp16", "--images", images)
    _run("quantize", bundle, "--precision", "int8", "--calib", images)
    return {"root": root, "bundle": bundle, "images": images}


def test_every_stage_recorded_its_artifacts_in_the_one_vocabulary(chain):
    from edge_se import manifest as vocab

    m = _manifest(chain["bundle"])
    formats = {name: rec["format"] for name, rec in m["artifacts"].items()}
    assert formats["model.onnx"] == vocab.ONNX and formats["model.ts"] == vocab.TORCHSCRIPT
    assert formats[vocab.TRT_QDQ_ARTIFACT] == vocab.ONNX
    cache = [n for n, f in formats.items() if f == vocab.TENSORRT_CALIBRATION_CACHE]
    assert cache and (chain["bundle"] / cache[0]).is_file()
    # the calibration came from the image folder, through the bundle's own preprocessing
    assert "images" in json.dumps(m["artifacts"][vocab.TRT_QDQ_ARTIFACT].get("calibration", {}))
    assert all(c["passed"] for c in m["checks"])
    assert vocab.precision_decision(m["artifacts"][vocab.TRT_QDQ_ARTIFACT]) is not None


def _toml(data: dict) -> str:
    """A recipe dict back to TOML (tables of strings, numbers, booleans and lists of them)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    top = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"\n[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
              for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


def _adapted(recipe: Path, dest: Path, calib_spec: Path, policy: str | None = None) -> tuple[Path, dict]:
    """A shipped recipe with its model replaced by the e2e bundle's (target, precision, build kept)."""
    import tomllib

    data = tomllib.loads(recipe.read_text())
    batch = data["model"]["batch"]
    data["model"].update(spec="se_digits", input_shape=[batch[1], 1, 32, 32])
    if "calibration" in data:
        data["calibration"]["spec"] = str(calib_spec)
    if policy is not None:
        data["precision"]["policy"] = policy
    data.get("build", {}).pop("timing_cache", None)
    path = dest / recipe.name
    path.write_text(_toml(data))
    return path, data


def _header_number(dotted: str) -> str:
    from edge_se.tensorrt.versions import parse_version, version_number

    return version_number(parse_version(dotted))


def _lowest_version(tensorrt_range: str) -> str:
    return re.search(r">=\s*(\d+\.\d+)", tensorrt_range).group(1)


def _script_files(script: Path) -> tuple[list[str], dict[str, str]]:
    """The trtexec arguments of a generated script and the sha256 it checks for each input file."""
    text = script.read_text()
    line = next(ln for ln in text.splitlines() if "$TRTEXEC\" --onnx=" in ln or ln.startswith('"$TRTEXEC"'))
    args = shlex.split(line.split("2>&1")[0])[1:]
    hashes = dict((f, h) for h, f in re.findall(r"echo '([0-9a-f]{64})  ([^']+)' \| sha256sum -c", text))
    return args, hashes


def _recipe_cases() -> list:
    """Every shipped recipe as shipped, and each INT8 one with policy ``auto`` (the quantize stage's decision)."""
    import tomllib

    cases = []
    for r in RECIPES:
        cases.append(pytest.param(r, None, id=f"{r.stem}-shipped-policy"))
        if tomllib.loads(r.read_text())["precision"]["mode"] == "int8":
            cases.append(pytest.param(r, "auto", id=f"{r.stem}-policy-auto"))
    return cases


@pytest.mark.parametrize("recipe,policy", _recipe_cases())
def test_build_script_for_every_shipped_recipe_names_real_files_and_the_recorded_decision(chain, tmp_path, recipe, policy):
    from edge_se import manifest as vocab
    from edge_se.bundle import sha256_file

    bundle = tmp_path / "b"
    shutil.copytree(chain["bundle"], bundle)
    spec = tmp_path / "calib.toml"
    spec.write_text(f'[source]\nkind = "folder"\npath = "{chain["images"]}"\n[preprocessing]\ncrop = [32, 32]\n'
                    'color = "GRAY"\nmean = [0.5]\nstd = [0.5]\n[selection]\ncount = 16\nseed = 0\n')
    path, data = _adapted(recipe, tmp_path, spec, policy)
    _run("build", bundle, "--recipe", path, "--script-only", _lowest_version(data["target"]["tensorrt"]))
    m = _manifest(bundle)
    script = bundle / f"build_{data['name']}.sh"
    args, hashes = _script_files(script)
    onnx = [a.split("=", 1)[1] for a in args if a.startswith("--onnx=")]
    assert len(onnx) == 1 and (bundle / onnx[0]).is_file()
    # every input file the script checks is a bundle artifact whose manifest sha256 it repeats
    assert onnx[0] in hashes
    for rel, digest in hashes.items():
        assert (bundle / rel).is_file() and sha256_file(bundle / rel) == digest
        owner = next(rec for rec in m["artifacts"].values() if any(f["path"] == rel for f in rec["files"]))
        assert any(f["sha256"] == digest for f in owner["files"])
    calib = [a.split("=", 1)[1] for a in args if a.startswith("--calib=")]
    stage_cache = [n for n, rec in m["artifacts"].items() if rec["format"] == vocab.TENSORRT_CALIBRATION_CACHE]
    for c in calib:  # seam 1: the scales the quantize stage wrote, found under the format it recorded,
        # given to trtexec under the header its Entropy2 calibrator reads for this TensorRT version
        head, _, body = (bundle / c).read_text().partition("\n")
        assert stage_cache and body == (bundle / stage_cache[0]).read_text().partition("\n")[2]
        version = _lowest_version(data["target"]["tensorrt"])
        assert head.endswith("-EntropyCalibration2") and head.startswith(f"TRT-{_header_number(version)}-")
    mode = data["precision"]["mode"]
    if mode == "int8" and "--int8" in args and onnx[0] == "model.onnx":
        assert calib, "an INT8 calibrator build must name the stage's calibration cache"
    layers = [a.split("=", 1)[1] for a in args if a.startswith("--layerPrecisions=")]
    if calib and (policy or data["precision"].get("policy")) == "auto":
        # seam 2: the decision the quantize stage recorded, not a pattern the build stage re-derived
        decided = vocab.precision_decision(m["artifacts"][vocab.TRT_QDQ_ARTIFACT]).kept_nodes
        named = layers[0].split(",") if layers else []
        assert sorted(n.rsplit(":", 1)[0] for n in named) == sorted(decided)
        outputs = [a.split("=", 1)[1] for a in args if a.startswith("--layerOutputTypes=")]
        assert outputs == layers  # each kept layer's output type too, as the Python build sets
    if onnx[0] == vocab.TRT_QDQ_ARTIFACT:
        assert not calib, "explicit Q/DQ needs no calibration cache"


def test_the_runtime_runs_every_artifact_on_a_real_image(chain):
    from edge_se.runtime import Runtime

    bundle = chain["bundle"]
    m = _manifest(bundle)
    image = next((chain["images"] / "seven").iterdir())
    ran = {}
    for name, rec in m["artifacts"].items():
        if rec["format"] not in ("onnx", "torchscript", "torch-export"):
            continue  # the cache is not a model; engines need their GPU
        backend = {"onnx": "onnxruntime", "torchscript": "torchscript", "torch-export": "pt2"}[rec["format"]]
        with Runtime.load(bundle, backend, artifact=name) as rt:
            top = rt.classify(image, k=1)[0][0]
        ran[name] = top
    assert set(ran) >= {"model.onnx", "model.ts", "model.fp16.onnx", "model.int8.cpu.onnx", "model.int8.trt.onnx"}
    labels = {str(t.label) for t in ran.values()}
    assert labels == {"seven"}, ran  # a trained net: every artifact reads the 7 as a seven


def test_validate_matrix_on_every_backend_here_and_the_report(chain, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(chain["bundle"], bundle)
    backends = ["ort", "torchscript", "trt"]
    if "model.pt2" in _manifest(bundle)["artifacts"]:
        backends.append("pt2")
    if importlib.util.find_spec("openvino") is not None:
        backends.append("ov")
    out = tmp_path / "rep"
    _run("validate", bundle, "--images", chain["images"], "--precisions", "fp32,fp16,int8", "--policies", "auto",
         "--backends", ",".join(backends), "--batch-sizes", "1", "--latency-seconds", "0.05", "--out", out)
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    measured = {(r["precision"], r["backend"]) for r in rows if not r.get("skipped")}
    assert {("fp32", "ort"), ("fp16", "ort"), ("int8", "ort"), ("fp32", "torchscript")} <= measured
    # seam 3: the trt rows look for the engines under the format the build stage writes; with no
    # engine built here they are skipped with that reason, never silently absent
    trt = [r for r in rows if r["backend"] == "trt"]
    assert trt and all(r.get("skipped") for r in trt)
    assert all("edge-se build" in r["error"] or "tensorrt" in r["error"].lower() for r in trt)
    assert report["data"]["labels"] and report["reference"]["accuracy"] > 0.8
    int8 = next(r for r in rows if r["precision"] == "int8" and r["backend"] == "ort" and not r.get("skipped"))
    assert int8["numerics"]["passed"] and int8["accuracy"] >= report["reference"]["accuracy"] - 0.15
    # the report stage re-renders what validate wrote
    rendered = tmp_path / "rendered"
    _run("report", out, "--out", rendered)
    assert (rendered / "report.html").is_file() and "int8" in (rendered / "report.md").read_text()


def test_the_typed_records_read_what_the_stages_wrote(chain):
    from edge_se.bundle import Bundle
    from edge_se.manifest import TRT_QDQ_ARTIFACT

    b = Bundle.open(chain["bundle"])
    model = b.model()
    assert model.spec == "se_digits" and model.input_shape == (1, 1, 32, 32) and model.reference_backend == "pytorch"
    trt = b.record(TRT_QDQ_ARTIFACT)
    assert trt.decision is not None and trt.decision.policy == "auto" and 0.95 <= trt.decision.int8_mac_share <= 1
    assert trt.input_name == "input" and trt.files[0].path == TRT_QDQ_ARTIFACT
    assert trt.policy == "auto" and trt.outputs and trt.outputs[0].shape == ("batch", 10)
    assert b.record("model.int8.calib.cache").for_onnx == "model.onnx"


@pytest.mark.parametrize("field,value,named", [
    (("artifacts", "model.onnx", "format"), "engine", "artifacts['model.onnx'].format"),
    (("artifacts", "model.onnx", "files"), "model.onnx", "artifacts['model.onnx'].files"),
    (("artifacts", "model.int8.trt.onnx", "kept_in_float", "kept_nodes"), "all", "kept_in_float.kept_nodes"),
    (("artifacts", "model.int8.trt.onnx", "kept_in_float", "int8_mac_share"), 7, "int8_mac_share"),
    (("model", "input_shape"), [1, "1", 32, 32], "model.input_shape"),
    (("model", "dynamic_batch"), "yes", "model.dynamic_batch"),
    (("artifacts", "model.onnx", "inputs"), [{"name": "input", "shape": "batch,1,32,32", "dtype": "float32"}],
     "artifacts['model.onnx'].inputs"),
    (("artifacts", "model.int8.calib.cache", "for_onnx"), ["model.onnx"], "artifacts['model.int8.calib.cache']"),
    (("artifacts", "model.int8.cpu.onnx", "kept_in_float", "budget_misses"), "none", "kept_in_float.budget_misses"),
])
def test_a_malformed_manifest_is_one_line_naming_the_field(chain, tmp_path, capsys, field, value, named):
    bundle = tmp_path / "b"
    shutil.copytree(chain["bundle"], bundle)
    m = _manifest(bundle)
    node = m
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    (bundle / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["-q", "validate", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "Traceback" not in err, err
