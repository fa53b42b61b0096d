"""Without these, the type stubs (what editors and mypy see) and the docstrings would
drift from the compiled module: a renamed parameter or a new method would go unnoticed.

The stub is compared with the module through ``ast`` and ``inspect`` (no mypy needed):
the same public names, the same parameters with the same defaults, the same attributes.
``python -m mypy.stubtest cargohold._cargohold`` checks the same stub more strictly
where mypy is installed.
"""

import ast
import inspect
import pathlib

import cargohold
from cargohold import _cargohold as native

STUB = pathlib.Path(cargohold.__file__).with_name("_cargohold.pyi")
# Methods pyo3 adds to every class (or that we add only as protocol plumbing) and that
# the stub need not restate.
IMPLICIT = {"__repr__", "__eq__", "__ne__", "__hash__", "__lt__", "__le__", "__gt__",
            "__ge__", "__new__", "__doc__", "__module__", "__dict__", "__weakref__"}
PROTOCOL = {"__enter__", "__exit__", "__iter__", "__contains__"}


def stub_tree():
    return ast.parse(STUB.read_text())


def stub_top():
    out = {}
    for node in stub_tree().body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]:
            out["__all__"] = node
    return out


def module_public():
    names = {n for n in dir(native) if not n.startswith("_")}
    return names | {"__version__", "__all__"}


def stub_params(fn):
    args = fn.args
    pos = args.posonlyargs + args.args
    defaults = [None] * (len(pos) - len(args.defaults)) + list(args.defaults)
    out = [(a.arg, None if d is None else ast.literal_eval(d)) for a, d in zip(pos, defaults)]
    if args.vararg:
        out.append(("*" + args.vararg.arg, None))
    out += [(a.arg, None if d is None else ast.literal_eval(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [(n, d) for n, d in out if n not in ("self", "cls")]


def native_params(obj):
    out = []
    for p in inspect.signature(obj).parameters.values():
        if p.name in ("self", "$self", "cls"):
            continue
        name = ("*" + p.name) if p.kind is p.VAR_POSITIONAL else p.name
        default = None if p.default is p.empty else p.default
        out.append((name, default))
    return out


def test_stub_and_module_have_the_same_public_names():
    # Type aliases of the stub (``StrPath = ...``) are plain assignments, not names here.
    assert set(stub_top()) == module_public()
    assert set(cargohold.__all__) == module_public() - {"__all__"}
    assert set(ast.literal_eval(stub_top()["__all__"].value)) == set(native.__all__)


def same_params(stub, native_):
    """Names equal; defaults equal, except that pyo3 renders a default it cannot spell
    (a negative number) as ``...``: then the stub only needs to have one."""
    if [n for n, _ in stub] != [n for n, _ in native_]:
        return False
    return all(d == e or (e is Ellipsis and d is not None) for (_, d), (_, e) in zip(stub, native_))


def test_functions_match():
    for name, node in stub_top().items():
        if isinstance(node, ast.FunctionDef):
            assert same_params(stub_params(node), native_params(getattr(native, name))), name


def test_classes_match():
    for name, node in stub_top().items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(native, name)
        if issubclass(cls, BaseException):
            continue
        declared = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                declared[item.name] = item
            elif isinstance(item, ast.AnnAssign):
                declared[item.target.id] = item
        own = {n for n in vars(cls) if n not in IMPLICIT
               and (not n.startswith("_") or n in PROTOCOL)}
        assert own == set(declared) - {"__new__"}, name
        for member, item in declared.items():
            if member == "__new__":
                assert same_params(stub_params(item), native_params(cls)), name
                continue
            attr = inspect.getattr_static(cls, member)
            is_prop = isinstance(item, ast.AnnAssign) or any(
                isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list)
            if is_prop:
                assert inspect.isgetsetdescriptor(attr) or inspect.isdatadescriptor(attr), (name, member)
            else:
                assert callable(attr), (name, member)
                assert same_params(stub_params(item), native_params(getattr(cls, member))), (name, member)


def test_every_public_name_has_a_docstring():
    for name in module_public() - {"__version__", "__all__"}:
        obj = getattr(native, name)
        assert (obj.__doc__ or "").strip(), name
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for member, attr in vars(obj).items():
                if member.startswith("_"):
                    continue
                assert (getattr(attr, "__doc__", None) or "").strip(), (name, member)
