"""Opset down-conversion for TensorRT 8.5/8.6 (JetPack 5), which parse ONNX up to opset 17.

torch's dynamo exporter emits opset >= 18. onnx's version converter is tried first; it has no
18 -> 17 adapter for the reduce operators every CNN uses (ReduceMean/ReduceMax take ``axes`` as an
input from 18 on), and onnxscript's converter only upgrades. For that one change edge-se moves
constant ``axes`` back into the attribute. Anything else new in 18 is left alone and the model
keeps its opset, said in the note. The export stage validates the result against PyTorch either way.
"""

from __future__ import annotations

from typing import Any

from edge_se.export.onnx_export import error_reason

#: reduce operators whose ``axes`` moved from an attribute to an input in opset 18
REDUCE_18 = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
             "ReduceProd", "ReduceSumSquare"}
#: opset-18 attributes that are harmless to drop at their default value
DEFAULT_18_ATTRS = {"Resize": {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}}


def onnx_opset(model) -> int | None:
    """The model's default-domain (``ai.onnx``) opset version, None when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def downconvert_opset(model, opset: int) -> tuple[Any, str | None]:
    """``model`` at ``opset`` when it can be converted; returns ``(model, note)`` (note None: nothing to do)."""
    import onnx
    from onnx import version_converter

    have = onnx_opset(model)
    if have is None or have <= opset:
        return model, None
    try:
        converted = version_converter.convert_version(model, opset)
        onnx.checker.check_model(converted)
        return converted, f"converted opset {have} -> {opset} with onnx's version converter"
    except Exception as e:  # the converter raises many types for an op it has no adapter for
        first = error_reason(e)
    if have == 18 and opset == 17:
        try:
            return _reduce_axes_to_attributes(model), (f"converted opset 18 -> 17: reduce axes moved back to "
                                                       f"attributes (onnx's converter: {first})")
        except ValueError as e:
            first = f"{first}; {e}"
    return model, f"kept opset {have}: it could not be converted to {opset} ({first})"


def _constant_values(model) -> dict[str, Any]:
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    return values


def _reduce_axes_to_attributes(model):
    """A copy of an opset-18 ``model`` at opset 17, or ValueError naming the node that cannot go back."""
    import onnx
    from onnx import helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    constants = _constant_values(out)
    schema_17 = {}
    for node in out.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"node {node.name!r} ({node.op_type}) holds a subgraph")
        if node.op_type in REDUCE_18:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            axes = None
            if len(node.input) > 1 and node.input[1]:
                if node.input[1] not in constants:
                    raise ValueError(f"node {node.name!r} ({node.op_type}) takes computed axes")
                axes = [int(v) for v in constants[node.input[1]].reshape(-1)]
            if attrs.get("noop_with_empty_axes") and not axes:
                raise ValueError(f"node {node.name!r} ({node.op_type}) is a no-op on empty axes")
            keep = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
            del node.attribute[:]
            node.attribute.extend(keep)
            if axes:
                node.attribute.append(helper.make_attribute("axes", axes))
            del node.input[1:]
            continue
        drop = DEFAULT_18_ATTRS.get(node.op_type, {})
        kept = []
        for a in node.attribute:
            if a.name in drop and helper.get_attribute_value(a) == drop[a.name]:
                continue
            kept.append(a)
        del node.attribute[:]
        node.attribute.extend(kept)
        key = node.op_type
        if key not in schema_17:
            try:
                schema_17[key] = onnx.defs.get_schema(key, 17, "")
            except onnx.defs.SchemaError:
                raise ValueError(f"operator {key} does not exist at opset 17") from None
        schema = schema_17[key]
        unknown = [a.name for a in node.attribute if a.name not in schema.attributes]
        variadic = any(i.option == onnx.defs.OpSchema.FormalParameterOption.Variadic for i in schema.inputs)
        if unknown or (not variadic and len(node.input) > len(schema.inputs)):
            raise ValueError(f"node {node.name!r} ({key}) uses opset-18 features ({', '.join(unknown) or 'inputs'})")
    for o in out.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 17
    onnx.checker.check_model(out, full_check=True)
    return out
