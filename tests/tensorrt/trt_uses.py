"""What edge-se's own code touches on TensorRT, read from its source (test harness, no TensorRT).

The code names TensorRT objects by a convention (docs/tensorrt.md, "API surface"), so the source says
which class each object is:

- ``trt``, and an attribute ``.trt``, is the bindings module (``trt.Builder``, ``trt.BuilderFlag.FP16``);
  a name bound to ``import_tensorrt(...)`` is edge-se's wrapper, whose ``.module`` is the bindings.
- the names in :data:`NAMES` (parameters, locals, attributes such as ``self._engine``: leading
  underscores do not count) are instances of those classes; a parameter annotated with anything
  but ``Any`` is what its annotation says instead (``engine: str | Path`` is a path).
- a local bound to a TensorRT expression takes its type: ``trt.Runtime(...)`` is a ``Runtime``, a
  method's result is what :data:`RETURNS` says. A TensorRT result that :data:`RETURNS` does not
  classify, bound to a name or used further, is reported (it could hide uses).

Recorded: every attribute read, write and method call on a typed object, ``trt.C`` and
``trt.C.MEMBER``, and ``getattr``/``hasattr``/``setattr`` with a constant name (a computed name on a
TensorRT object is reported: nothing could check it). Each use also carries the ``TRT_API`` group of
the code path it sits on: inside ``if "<group>" in paths:`` (``engine.api_paths(plan)``, the
dispatch the build itself runs), or in a function called only there; the rest is ``"common"``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

#: naming convention: name (or attribute, leading underscores stripped) -> TensorRT class
NAMES = {
    "builder": "Builder",
    "network": "INetworkDefinition",
    "config": "IBuilderConfig",
    "layer": "ILayer",
    "tensor": "ITensor",
    "profile": "IOptimizationProfile",
    "cal": "IOptimizationProfile",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "runtime": "Runtime",
}
MODULE_NAMES = ("trt",)

#: (class, member) -> what it returns or holds: a class name, "enum:<Enum>" (an enum value), or None
#: (plain data: numbers, strings, shapes, booleans). Members named ``num_*`` are plain too.
RETURNS: dict[tuple[str, str], str | None] = {
    ("Builder", "create_network"): "INetworkDefinition",
    ("Builder", "create_builder_config"): "IBuilderConfig",
    ("Builder", "create_optimization_profile"): "IOptimizationProfile",
    ("INetworkDefinition", "get_input"): "ITensor",
    ("INetworkDefinition", "get_output"): "ITensor",
    ("INetworkDefinition", "get_layer"): "ILayer",
    ("ILayer", "get_input"): "ITensor",
    ("ILayer", "get_output"): "ITensor",
    ("ILayer", "name"): None,
    ("ITensor", "name"): None,
    ("ITensor", "shape"): None,
    ("IBuilderConfig", "can_run_on_DLA"): None,
    ("Runtime", "deserialize_cuda_engine"): "ICudaEngine",
    ("Runtime", "DLA_core"): None,
    ("ICudaEngine", "create_execution_context"): "IExecutionContext",
    ("ICudaEngine", "get_tensor_name"): None,
    ("ICudaEngine", "get_tensor_mode"): "enum:TensorIOMode",
    ("ICudaEngine", "get_tensor_dtype"): "enum:DataType",
    ("ICudaEngine", "get_tensor_profile_shape"): None,
}
#: Polygraphy loaders (``p = import_polygraphy(...)``; ``p.X(...)`` is a loader, calling it loads) ->
#: what the loaded value is, as in RETURNS; a loader not listed here is reported where its result is
#: bound or used (``p.TrtRunner(...)`` and other non-loader objects are fine: only ``p.X(...)()`` loads).
POLYGRAPHY_RETURNS: dict[str, str | None] = {
    "EngineFromBytes": "ICudaEngine",
    "EngineFromNetwork": "ICudaEngine",
    "EngineFromPath": "ICudaEngine",
    "EngineBytesFromNetwork": None,  # the serialized plan
    "CreateConfig": "IBuilderConfig",
    "CreateConfigRTX": "IBuilderConfig",
    "PostprocessConfig": "IBuilderConfig",
}
#: what every pybind11 enum value has
ENUM_VALUE_MEMBERS = ("name", "value")
#: module attributes that are not API (version, import name)
MODULE_DUNDERS = ("__version__", "__name__", "__file__")
_WRAPPER_FACTORIES = ("import_tensorrt",)
_MODULE_FACTORIES = ("load_bindings",)
_POLYGRAPHY_FACTORIES = ("import_polygraphy",)


@dataclass(frozen=True)
class Use:
    """``cls.member`` (``cls`` "trt": a name in the bindings module) at ``line``, on path ``group``."""

    cls: str
    member: str
    line: int
    group: str

    def __str__(self) -> str:
        return f"{self.cls}.{self.member}" if self.cls != "trt" else f"trt.{self.member}"


@dataclass
class Scan:
    uses: list[Use]
    problems: list[str]  # "line N: ..." for what the scan cannot type or check
    by_name: set[str]  # enums whose values the module reads by ``.name`` (it may handle any member)


def _guard(test: ast.expr) -> str | None:
    """``"dla" in paths`` -> ``"dla"`` (``paths``: what ``engine.api_paths(plan)`` returned)."""
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In)
            and isinstance(test.left, ast.Constant) and isinstance(test.left.value, str)
            and isinstance(test.comparators[0], ast.Name) and test.comparators[0].id == "paths"):
        return test.left.value
    return None


def _strip(name: str) -> str:
    return name.lstrip("_")


class _Scope:
    def __init__(self, parent: "_Scope | None") -> None:
        self.parent, self.types, self.bound = parent, {}, set()

    def lookup(self, name: str):
        scope = self
        while scope is not None:
            if name in scope.bound:  # a parameter, import, def or assignment here decides
                return scope.types.get(name)
            scope = scope.parent
        return _CONVENTION.get(name)


_CONVENTION = {**{n: ("obj", c) for n, c in NAMES.items()}, **{n: ("module",) for n in MODULE_NAMES}}


def _is_any(annotation: ast.expr | None) -> bool:
    return annotation is None or (isinstance(annotation, ast.Name) and annotation.id == "Any") or (
        isinstance(annotation, ast.Constant) and annotation.value == "Any")


class _Scanner:
    def __init__(self, enums: set[str]) -> None:
        self.enums = enums
        self.uses: list[Use] = []
        self.problems: list[str] = []
        self.by_name: set[str] = set()
        self.func_groups: dict[str, str] = {}

    # -- types ------------------------------------------------------------------------------
    def resolve(self, t, line: int):
        """The value of a ("member", C, m): what RETURNS says (or an "unknown" marker)."""
        if t and t[0] == "loaded":
            if t[1] not in POLYGRAPHY_RETURNS:
                return ("unknown", "polygraphy", t[1])
            r = POLYGRAPHY_RETURNS[t[1]]
            return None if r is None else ("obj", r)
        if not t or t[0] != "member":
            return t
        _, cls, member = t
        if member.startswith("num_"):
            return None
        if (cls, member) not in RETURNS:
            return ("unknown", cls, member)
        r = RETURNS[(cls, member)]
        if r is None:
            return None
        return ("enumval", r[5:]) if r.startswith("enum:") else ("obj", r)

    def record(self, cls: str, member: str, line: int, group: str) -> None:
        self.uses.append(Use(cls, member, line, group))

    def attr_type(self, base, attr: str, line: int, group: str):
        """Type of ``<base>.attr`` (recording the use when ``base`` is TensorRT)."""
        if base and base[0] in ("member", "loaded"):
            base = self.resolve(base, line)
        if base and base[0] == "unknown":
            self.problems.append(f"line {line}: .{attr} on the result of {base[1]}.{base[2]}, which RETURNS does not "
                                 "classify (add it there)")
            return None
        if base == ("module",):
            if attr in MODULE_DUNDERS:
                return None
            self.record("trt", attr, line, group)
            return ("cls", attr)
        if base == ("wrapper",):
            return ("module",) if attr == "module" else None
        if base == ("polygraphy",):
            return ("loader", attr)
        if base and base[0] == "cls":
            self.record(base[1], attr, line, group)
            return ("enumval", base[1]) if base[1] in self.enums else ("member", base[1], attr)
        if base and base[0] == "enumval":
            if attr == "name":
                self.by_name.add(base[1])
            if attr not in ENUM_VALUE_MEMBERS:
                self.record(base[1], attr, line, group)
            return None
        if base and base[0] == "obj":
            self.record(base[1], attr, line, group)
            return ("member", base[1], attr)
        # not TensorRT: the attribute convention (self._engine, runner.context, other.trt)
        name = _strip(attr)
        if name in MODULE_NAMES:
            return ("module",)
        return ("obj", NAMES[name]) if name in NAMES else None

    def infer(self, node: ast.expr, scope: _Scope, group: str):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            return scope.lookup(node.id)
        if isinstance(node, ast.Attribute):
            return self.attr_type(self.infer(node.value, scope, group), node.attr, line, group)
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("getattr", "hasattr", "setattr") and node.args:
                base = self.infer(node.args[0], scope, group)
                for a in node.args[1:]:
                    self.infer(a, scope, group)
                if base and base[0] != "wrapper":
                    name = node.args[1] if len(node.args) > 1 else None
                    if isinstance(name, ast.Constant) and isinstance(name.value, str):
                        t = self.attr_type(base, name.value, line, group)
                        return self.resolve(t, line) if f.id == "getattr" else None
                    self.problems.append(f"line {line}: {f.id}() with a computed name on a TensorRT object "
                                         "(write the attribute out so it can be checked)")
                return None
            tf = self.infer(f, scope, group)
            for a in [*node.args, *(k.value for k in node.keywords)]:
                self.infer(a, scope, group)
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in _WRAPPER_FACTORIES:
                return ("wrapper",)
            if name in _MODULE_FACTORIES:
                return ("module",)
            if name in _POLYGRAPHY_FACTORIES:
                return ("polygraphy",)
            if tf and tf[0] == "loader":
                return ("loader-made", tf[1])
            if tf and tf[0] == "loader-made":
                return ("loaded", tf[1])
            if tf and tf[0] == "cls":
                return ("obj", tf[1])
            if tf and tf[0] == "member":
                return self.resolve(tf, line)
            return None
        if isinstance(node, ast.Lambda):
            inner = _Scope(scope)
            for a in node.args.args:
                inner.bound.add(a.arg)
            self.infer(node.body, inner, group)
            return None
        for child in ast.iter_child_nodes(node):  # operators, comprehensions, literals...
            if isinstance(child, ast.expr):
                self.infer(child, scope, group)
            elif isinstance(child, ast.comprehension):
                self.infer(child.iter, scope, group)
                for cond in child.ifs:
                    self.infer(cond, scope, group)
        return None

    # -- statements -------------------------------------------------------------------------
    def bind(self, target: ast.expr, t, scope: _Scope, group: str, line: int) -> None:
        if t and t[0] in ("member", "loaded"):
            t = self.resolve(t, line)
        if isinstance(target, ast.Name):
            if t and t[0] == "unknown":
                self.problems.append(f"line {line}: {target.id} = the result of {t[1]}.{t[2]}, which RETURNS does "
                                     "not classify (add it there)")
                t = None
            scope.bound.add(target.id)
            if t is not None:
                scope.types[target.id] = t
            elif target.id in _CONVENTION:
                scope.types[target.id] = _CONVENTION[target.id]  # the convention holds for what it names
        elif isinstance(target, (ast.Tuple, ast.List)):
            for el in target.elts:
                self.bind(el, None, scope, group, line)
        else:
            if isinstance(target, ast.Attribute) and t and t[0] in ("obj", "module", "unknown"):
                # an attribute outlives the function: only its name can carry the type to other code
                said = ("module",) if _strip(target.attr) in MODULE_NAMES else (
                    ("obj", NAMES[_strip(target.attr)]) if _strip(target.attr) in NAMES else None)
                if said != t:
                    what = "the bindings module" if t[0] == "module" else (
                        t[1] if t[0] == "obj" else f"the result of {t[1]}.{t[2]}")
                    self.problems.append(f"line {line}: .{target.attr} holds {what}, which its name does not say "
                                         "(name it by the convention, NAMES)")
            self.infer(target, scope, group)  # attribute / subscript targets: a write is a use

    def function(self, node, scope: _Scope, group: str, top: bool = False) -> None:
        inner = _Scope(scope)
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, [args.vararg, args.kwarg])]:
            inner.bound.add(a.arg)
            if a.arg in _CONVENTION and _is_any(a.annotation):
                inner.types[a.arg] = _CONVENTION[a.arg]
        for d in [*args.defaults, *args.kw_defaults]:
            if d is not None:
                self.infer(d, scope, group)
        self.block(node.body, inner, self.func_groups.get(node.name, group) if top else group)

    def block(self, body: list[ast.stmt], scope: _Scope, group: str) -> None:
        for stmt in body:
            self.stmt(stmt, scope, group)

    def stmt(self, s: ast.stmt, scope: _Scope, group: str) -> None:
        line = s.lineno
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in s.decorator_list:
                self.infer(d, scope, group)
            scope.bound.add(s.name)
            scope.types.pop(s.name, None)
            self.function(s, scope, group, top=scope.parent is None)
        elif isinstance(s, ast.ClassDef):
            inner = _Scope(scope)
            for b in s.body:
                if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.function(b, scope, group)
                else:
                    self.stmt(b, inner, group)
        elif isinstance(s, ast.Assign):
            t = self.infer(s.value, scope, group)
            for target in s.targets:
                if isinstance(target, (ast.Tuple, ast.List)) and isinstance(s.value, (ast.Tuple, ast.List)):
                    for el, v in zip(target.elts, s.value.elts):
                        self.bind(el, self.infer(v, scope, group), scope, group, line)
                else:
                    self.bind(target, t, scope, group, line)
        elif isinstance(s, (ast.AnnAssign, ast.AugAssign)):
            t = self.infer(s.value, scope, group) if s.value is not None else None
            self.bind(s.target, t if isinstance(s, ast.AnnAssign) else None, scope, group, line)
        elif isinstance(s, ast.If):
            self.infer(s.test, scope, group)
            g = _guard(s.test)
            self.block(s.body, scope, g or group)
            self.block(s.orelse, scope, group)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self.infer(s.iter, scope, group)
            self.bind(s.target, None, scope, group, line)
            self.block(s.body, scope, group)
            self.block(s.orelse, scope, group)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                t = self.infer(item.context_expr, scope, group)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, None if t is None else t, scope, group, line)
            self.block(s.body, scope, group)
        elif isinstance(s, ast.Try):
            self.block(s.body, scope, group)
            for h in s.handlers:
                if h.type is not None:
                    self.infer(h.type, scope, group)
                if h.name:
                    scope.bound.add(h.name)
                self.block(h.body, scope, group)
            self.block(s.orelse, scope, group)
            self.block(s.finalbody, scope, group)
        elif isinstance(s, ast.While):
            self.infer(s.test, scope, group)
            self.block(s.body, scope, group)
            self.block(s.orelse, scope, group)
        elif isinstance(s, (ast.Import, ast.ImportFrom)):
            for a in s.names:
                scope.bound.add((a.asname or a.name).split(".")[0])
        else:
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.expr):
                    self.infer(child, scope, group)


def guards_of(tree: ast.Module, name: str) -> list[str | None]:
    """For each reference to ``name`` in ``tree``: the innermost ``if "<group>" in paths:`` around it."""
    out: list[str | None] = []

    def walk(node: ast.AST, guard: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            g = _guard(node.test) if isinstance(node, ast.If) and child in node.body and _guard(node.test) else guard
            if isinstance(child, ast.Name) and child.id == name:
                out.append(g)
            walk(child, g)

    walk(tree, None)
    return out


def _function_groups(tree: ast.Module) -> dict[str, str]:
    """Module-level function -> the one ``if "<group>" in ...`` guard all its calls sit under
    (directly or through a function that does); "common" when any call is unguarded."""
    funcs = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    calls: dict[str, list[tuple[str | None, str | None]]] = {f: [] for f in funcs}  # (caller, guard)

    def walk(node: ast.AST, caller: str | None, guard: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            g, c = guard, caller
            if isinstance(node, ast.If) and child in node.body and _guard(node.test):
                g = _guard(node.test)
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is tree:
                c, g = child.name, None
            if isinstance(child, ast.Name) and child.id in funcs and not isinstance(child.ctx, ast.Store):
                calls[child.id].append((c, g))
            walk(child, c, g)

    walk(tree, None, None)
    groups: dict[str, str] = {}

    def group_of(f: str, seen: frozenset = frozenset()) -> str:
        if f in groups:
            return groups[f]
        found = set()
        for caller, guard in calls[f]:
            if guard:
                found.add(guard)
            elif caller is None or caller in seen:
                found.add("common")
            else:
                found.add(group_of(caller, seen | {f}))
        return found.pop() if len(found) == 1 else "common"

    for f in funcs:
        groups[f] = group_of(f)
    return groups


#: folders whose modules are always scanned; elsewhere a module is scanned when it reaches TensorRT
SCANNED = ("tensorrt",)
_SIGNAL_CALLS = ("load_bindings", "import_tensorrt", "import_polygraphy")
_SIGNAL_IMPORTS = ("tensorrt", "tensorrt_rtx", "polygraphy")


def reaches_tensorrt(tree: ast.Module) -> bool:
    """Whether a module can hold TensorRT objects: it imports TensorRT or Polygraphy, calls
    ``load_bindings`` / ``import_tensorrt`` / ``import_polygraphy``, takes a ``trt`` parameter or
    reads a ``.trt`` attribute."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None) in _SIGNAL_CALLS:
                return True
        elif isinstance(node, ast.arg) and node.arg in MODULE_NAMES:
            return True
        elif isinstance(node, ast.Attribute) and node.attr in MODULE_NAMES:
            return True
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in _SIGNAL_IMPORTS for a in node.names):
            return True
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _SIGNAL_IMPORTS:
            return True
    return False


def tensorrt_modules(package: Path) -> list[Path]:
    """The modules of ``package`` (the ``edge_se`` folder) the convention applies to: every module in
    :data:`SCANNED` folders, and any other that :func:`reaches_tensorrt`."""
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if any(rel.startswith(f + "/") for f in SCANNED) or reaches_tensorrt(ast.parse(path.read_text(), str(path))):
            out.append(path)
    return out


def scan(path: Path, enums: set[str]) -> Scan:
    """The TensorRT uses in the Python file ``path`` (``enums``: the bindings' enum class names)."""
    tree = ast.parse(path.read_text(), str(path))
    s = _Scanner(enums)
    s.func_groups = _function_groups(tree)
    s.block(tree.body, _Scope(None), "common")
    return Scan(s.uses, s.problems, s.by_name)
