"""``build_<target>.sh``: the trtexec command line equivalent to a build plan.

Every flag is looked up in ``data/trtexec_flags.json``, the table of flags that each TensorRT
release's trtexec documents (generated from NVIDIA's trtexec source by
``scripts/trtexec_flags.py``), so a script for 8.5 never says ``--skipInference`` and one for 11
never says ``--fp16``. Users on a Jetson without the Python bindings run the script on the device.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Sequence

from edge_se.errors import InputError
from edge_se.tensorrt.plan import BuildPlan
from edge_se.tensorrt.versions import Version, format_version, parse_version
from edge_se.trust import inside_root, safe_name, safe_sha256


@functools.lru_cache(maxsize=1)
def flag_table() -> dict:
    """The checked-in trtexec flag table (``{"versions": {"10.3": {"flags": {...}}}}``)."""
    text = (Path(__file__).resolve().parent / "data/trtexec_flags.json").read_text("utf-8")
    return json.loads(text)


def table_version(version: Version) -> str:
    """The table entry for ``version``: its own minor release, else the newest one before it."""
    known = sorted(flag_table()["versions"], key=parse_version)
    want = version[:2]
    if format_version(want) in known:
        return format_version(want)
    older = [k for k in known if parse_version(k) <= want]
    if not older:
        raise InputError(f"no trtexec flag table for TensorRT {format_version(version)} (the table starts at {known[0]})")
    return older[-1]


def flags_for(version: Version) -> dict[str, str]:
    """Flag -> "yes" | "deprecated" for the trtexec of TensorRT ``version``."""
    return flag_table()["versions"][table_version(version)]["flags"]


def unknown_flags(command: Sequence[str], version: Version, allow_deprecated: bool = False) -> list[str]:
    """Flags of ``command`` that the trtexec of ``version`` does not document (or deprecates)."""
    known = flags_for(version)
    bad = []
    for arg in command[1:]:
        if not arg.startswith("-"):
            continue
        name = arg.split("=", 1)[0]
        status = known.get(name)
        if status is None or (status == "deprecated" and not allow_deprecated):
            bad.append(name)
    return bad


def _shape(name: str, shape: Sequence[int]) -> str:
    return f"{name}:{'x'.join(str(int(d)) for d in shape)}"


def _comment(text: object) -> str:
    """``text`` for a ``#`` comment line: control characters (a newline ends the comment) become '?'."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def trtexec_command(
    plan: BuildPlan,
    *,
    onnx: str,
    engine: str,
    calibration_cache: str | None = None,
    float_layers: Sequence[str] = (),
    timing_cache: str | None = None,
) -> list[str]:
    """The trtexec argv (paths as given) that builds what ``plan`` builds."""
    version = parse_version(plan.tensorrt_version)
    cmd = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    for p in plan.profiles:
        if p.min != p.max or p.min != p.opt:
            cmd += [f"--minShapes={_shape(p.input, p.min)}", f"--optShapes={_shape(p.input, p.opt)}",
                    f"--maxShapes={_shape(p.input, p.max)}"]
        else:
            cmd.append(f"--optShapes={_shape(p.input, p.opt)}")
    if "FP16" in plan.builder_flags:
        cmd.append("--fp16")
    if "INT8" in plan.builder_flags:
        cmd.append("--int8")
    if plan.calibrator:
        if not calibration_cache:
            raise InputError("the INT8 calibrator path needs a calibration cache for trtexec (--calib)")
        cmd.append(f"--calib={calibration_cache}")
    if plan.policy_mode == "layer-constraints" and float_layers:
        cmd.append("--precisionConstraints=obey")
        layers = ",".join(f"{n}:fp32" for n in float_layers)
        # both, as the Python build sets both (precision and output type): a kept-float layer whose
        # output type is left free may still hand INT8 to the next layer
        cmd.append("--layerPrecisions=" + layers)
        cmd.append("--layerOutputTypes=" + layers)
    if plan.dla_core is not None:
        cmd.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            cmd.append("--allowGPUFallback")
    if plan.workspace_mib:
        cmd.append(f"--memPoolSize=workspace:{plan.workspace_mib}")
    if plan.optimization_level is not None:
        cmd.append(f"--builderOptimizationLevel={plan.optimization_level}")
    if timing_cache:
        cmd.append(f"--timingCacheFile={timing_cache}")
    # Build only: --skipInference from 8.6, --buildOnly on 8.5.
    cmd.append("--skipInference" if "--skipInference" in flags_for(version) else "--buildOnly")
    bad = unknown_flags(cmd, version)
    if bad:
        raise InputError(
            f"trtexec of TensorRT {plan.tensorrt_version} has no {', '.join(bad)}; this build cannot be "
            "expressed as a trtexec command for that version"
        )
    return cmd


def render_script(
    cmd: Sequence[str], plan: BuildPlan, *, target: str, recipe: str, onnx_sha256: str, name: str | None = None
) -> str:
    """A bash script running ``cmd`` from the script's folder and writing a minimal sidecar.

    Every value in a command goes through ``shlex.quote``; the ones in the sidecar heredoc (which
    must expand ``$TRT_VERSION``) are checked plain names, hex digests and integers; comments lose
    their control characters. The engine is a plain file name: the script writes only beside itself.
    """
    engine = next(a.split("=", 1)[1] for a in cmd if a.startswith("--saveEngine="))
    onnx = next(a.split("=", 1)[1] for a in cmd if a.startswith("--onnx="))
    safe_name(engine, "engine file name", "build script")
    safe_name(target, "target name", "build script")
    if name is not None:
        safe_name(name, "engine name", "build script")
    safe_name(plan.path, "precision path", "build script")
    safe_sha256(onnx_sha256, "onnx sha256", "build script")
    if plan.dla_core is not None and (not isinstance(plan.dla_core, int) or isinstance(plan.dla_core, bool)):
        raise InputError(f"build script: DLA core {plan.dla_core!r} is not an integer")
    table = table_version(parse_version(plan.tensorrt_version))
    lines = [
        "#!/usr/bin/env bash",
        _comment(f"# Build the {name or target} engine with trtexec, on the {target} device that will run it."),
        _comment(f"# Generated by edge-se from recipe {recipe}; plan: {plan.path} on TensorRT {plan.tensorrt_version}"),
        _comment(f"# ({plan.era} era). Flags checked against trtexec {table}'s documented options."),
        "# Engines are specific to the GPU, TensorRT and CUDA versions: never copy one to another machine.",
        *(_comment(f"# note: {n}") for n in plan.notes),
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        'if [ ! -x "$TRTEXEC" ]; then echo "trtexec not found; set TRTEXEC=/path/to/trtexec" >&2; exit 3; fi',
    ]
    for arg in cmd:
        if arg.startswith("--calib="):
            cache = arg.split("=", 1)[1]
            missing = f"missing calibration cache {cache}: run edge-se export with the INT8 stage first"
            lines.append(f"if [ ! -f {shlex.quote(cache)} ]; then echo {shlex.quote(missing)} >&2; exit 2; fi")
    lines += [
        f"echo {shlex.quote(f'{onnx_sha256}  {onnx}')} | sha256sum -c --quiet - || "
        f"{{ echo {shlex.quote(f'{onnx} does not match the bundle manifest')} >&2; exit 1; }}",
        '"$TRTEXEC" ' + " ".join(shlex.quote(a) for a in cmd[1:]) + " 2>&1 | tee "
        + shlex.quote(engine + ".trtexec.log"),
        "test \"${PIPESTATUS[0]}\" -eq 0",
        f"TRT_VERSION=$(sed -n 's/.*TensorRT version: \\([0-9.]*\\).*/\\1/p' {shlex.quote(engine + '.trtexec.log')} | head -n1)",
        # the device trtexec built on (its "=== Device Information ===" lines), for the sidecar's
        # GPU check; only letters, digits, spaces and ._- reach the JSON
        f"GPU_NAME=$(sed -n 's/.*Selected Device: //p' {shlex.quote(engine + '.trtexec.log')} | head -n1 | tr -cd 'A-Za-z0-9 ._-')",
        f"COMPUTE_CAPABILITY=$(sed -n 's/.*Compute Capability: \\([0-9.]*\\).*/\\1/p' {shlex.quote(engine + '.trtexec.log')} | head -n1)",
        f"cat > {shlex.quote(engine + '.json')} <<EOF",
        "{",
        '  "format": "edge-se-engine",',
        '  "format_version": 1,',
        '  "built_by": "trtexec",',
        '  "tensorrt_version": "${TRT_VERSION}",',
        '  "gpu_name": "${GPU_NAME}",',
        '  "compute_capability": "${COMPUTE_CAPABILITY}",',
        f'  "target": "{target}",',
        f'  "precision_path": "{plan.path}",',
        f'  "dla_core": {"null" if plan.dla_core is None else plan.dla_core},',
        f'  "onnx_sha256": "{onnx_sha256}",',
        f'  "engine_sha256": "$(sha256sum {shlex.quote(engine)} | cut -d" " -f1)"',
        "}",
        "EOF",
        f"echo {shlex.quote(f'built {engine}')}",
        "",
    ]
    return "\n".join(lines)


def script_name(target: str) -> str:
    return f"build_{safe_name(target, 'script name', 'build script')}.sh"


def write_script(folder: Path, text: str, target: str) -> Path:
    """Write ``build_<target>.sh`` (executable) into ``folder`` atomically (never outside it)."""
    from edge_se.bundle import atomic_path

    final = inside_root(folder, Path(folder) / script_name(target), "build script")
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
    return final
