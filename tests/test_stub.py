"""fastrnn/_core.pyi, the type stub of the native module, against the module it describes: the same
names, classes, bases, methods and properties, and for every function and method the parameter
names, defaults and types that pybind11 writes in the first line of its docstring. Also that the
stub and the py.typed marker sit beside the imported package (installed with it), and, where mypy
is installed, that its stubtest reports only what no stub can change.
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastrnn
from fastrnn import _core

PACKAGE_DIR = Path(fastrnn.__file__).parent

# pybind11 3's spellings of types, and pybind11 2's (the build accepts both), in the stub's.
DECLARED_SPELLINGS = [
    ("numpy.typing.NDArray[", "NDArray["),
    ("numpy.ndarray[", "NDArray["),
    ("numpy.", "np."),
    ("typing.SupportsInt | typing.SupportsIndex", "SupportsIndex"),
    ("typing.SupportsFloat | typing.SupportsIndex", "float"),
]
# pybind11 2 declares an integer argument `int`, though it accepts any object with __index__.
DECLARED_ARGUMENT_SPELLINGS = {"int": "SupportsIndex"}

# "name(a: type, b: type = default) -> type"; a property's getter has no name.
SIGNATURE = re.compile(r"\w*\((?P<parameters>.*)\) -> (?P<returns>.+)")
PARAMETER = re.compile(r"(?P<name>\w+): (?P<type>.+?)(?: = (?P<default>.+))?")


def stub_members_and_aliases():
    """({name: ClassDef, FunctionDef or AnnAssign} of what the stub says the module holds,
    {name: expression} of its type aliases, which exist for the type checker only)."""
    members, aliases = {}, {}
    for node in ast.parse((PACKAGE_DIR / "_core.pyi").read_text(), filename="_core.pyi").body:
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.annotation) == "TypeAlias":
            aliases[node.target.id] = node.value
        elif isinstance(node, ast.AnnAssign):
            members[node.target.id] = node
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            members[node.name] = node
        else:
            assert isinstance(node, (ast.Import, ast.ImportFrom)), f"unexpected statement: {ast.unparse(node)}"
    return members, aliases


STUB_MEMBERS, STUB_ALIASES = stub_members_and_aliases()
RUNTIME_NAMES = sorted(name for name in vars(_core) if not (name.startswith("__") and name.endswith("__")))
CLASSES = sorted(name for name in RUNTIME_NAMES if isinstance(getattr(_core, name), type))
FUNCTIONS = sorted(name for name in RUNTIME_NAMES if callable(getattr(_core, name)) and name not in CLASSES)


def stub_type(annotation):
    """The annotation's text with the stub's aliases written out."""
    class Expand(ast.NodeTransformer):
        def visit_Name(self, node):
            return self.visit(STUB_ALIASES[node.id]) if node.id in STUB_ALIASES else node

    return ast.unparse(Expand().visit(ast.parse(ast.unparse(annotation), mode="eval")))


def declared_type(text, argument):
    for pybind_spelling, stub_spelling in DECLARED_SPELLINGS:
        text = text.replace(pybind_spelling, stub_spelling)
    return DECLARED_ARGUMENT_SPELLINGS.get(text, text) if argument else text


def refines(stub, declared):
    """Whether a stub type says what pybind11's declared type says, or more: `object` is what a
    binding checks itself, a bare list, tuple or dict gets its items, a str may be a Literal."""
    if declared == "object":
        return True
    if declared in ("list", "tuple", "dict"):
        return stub.startswith(declared + "[")
    if declared == "str" and stub.startswith("Literal["):
        return True
    return stub == declared


def split_parameters(text):
    """The parameters of a pybind11 signature, split at the commas outside brackets."""
    parameters, depth, start = [], 0, 0
    for index, character in enumerate(text):
        if character in "[(":
            depth += 1
        elif character in "])":
            depth -= 1
        elif character == "," and depth == 0:
            parameters.append(text[start:index].strip())
            start = index + 1
    return parameters + [text[start:].strip()] if text.strip() else parameters


def runtime_signature(function):
    """[(name, declared type, default or None)], declared return type: pybind11's signature of
    `function`, from the first line of its docstring."""
    first_line = (function.__doc__ or "").partition("\n")[0]
    signature = SIGNATURE.fullmatch(first_line)
    assert signature, f"no pybind11 signature in {function!r}'s docstring: {first_line!r}"
    parameters = []
    for text in split_parameters(signature["parameters"]):
        parameter = PARAMETER.fullmatch(text)
        assert parameter, f"unreadable parameter {text!r} in {first_line!r}"
        default = None if parameter["default"] is None else ast.literal_eval(parameter["default"])
        parameters.append((parameter["name"], declared_type(parameter["type"], argument=True), default))
    return parameters, declared_type(signature["returns"], argument=False)


def has_constructor(cls):
    """Whether pybind11 bound a constructor: without one, a class has a placeholder __init__
    that raises TypeError."""
    return (vars(cls)["__init__"].__doc__ or "").startswith("__init__(")


def check_function(stub, runtime, where):
    """Asserts that the stub's FunctionDef has the runtime function's parameters (names, order,
    defaults) and types that refine pybind11's declared ones."""
    arguments = stub.args
    assert not (arguments.posonlyargs or arguments.vararg or arguments.kwonlyargs or arguments.kwarg), \
        f"{where}: pybind11 functions take plain named parameters"
    parameters, returns = runtime_signature(runtime)
    stub_defaults = [None] * (len(arguments.args) - len(arguments.defaults)) + arguments.defaults
    assert [argument.arg for argument in arguments.args] == [name for name, _, _ in parameters], where
    for argument, default, (name, declared, runtime_default) in zip(arguments.args, stub_defaults, parameters):
        assert (default is None) == (runtime_default is None), f"{where}({name}): a default in one only"
        if default is not None:
            assert ast.literal_eval(default) == runtime_default, f"{where}({name}): another default"
        if name == "self":
            assert argument.annotation is None, f"{where}: self is not annotated in a stub"
            continue
        assert argument.annotation is not None, f"{where}({name}): no type"
        assert refines(stub_type(argument.annotation), declared), \
            f"{where}({name}): stub {stub_type(argument.annotation)}, pybind11 {declared}"
    assert stub.returns is not None and refines(stub_type(stub.returns), returns), \
        f"{where}: returns stub {stub.returns and stub_type(stub.returns)}, pybind11 {returns}"


def test_stub_names_what_the_module_holds():
    assert sorted(STUB_MEMBERS) == RUNTIME_NAMES


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signature(name):
    stub = STUB_MEMBERS[name]
    assert isinstance(stub, ast.FunctionDef), f"{name}: a function at run time"
    check_function(stub, getattr(_core, name), name)


@pytest.mark.parametrize("name", CLASSES)
def test_class(name):
    cls, stub = getattr(_core, name), STUB_MEMBERS[name]
    assert isinstance(stub, ast.ClassDef), f"{name}: a class at run time"
    assert [ast.unparse(base) for base in stub.bases] == [
        base.__name__ for base in cls.__bases__ if base.__module__ == _core.__name__]
    runtime_members = sorted(member for member in vars(cls)
                             if not member.startswith("_") or member == "__init__" and has_constructor(cls))
    stub_methods = {node.name: node for node in stub.body if isinstance(node, ast.FunctionDef)}
    assert all(isinstance(node, ast.FunctionDef) for node in stub.body), f"{name}: only methods in a class"
    assert sorted(stub_methods) == runtime_members, name
    for member, method in stub_methods.items():
        value, where = vars(cls)[member], f"{name}.{member}"
        is_property = [ast.unparse(decorator) for decorator in method.decorator_list] == ["property"]
        assert is_property == isinstance(value, property), f"{where}: a property in one only"
        if is_property:
            _, returns = runtime_signature(value.fget)
            assert refines(stub_type(method.returns), returns), f"{where}: stub {stub_type(method.returns)}, {returns}"
        else:
            check_function(method, value, where)


def test_module_constants():
    for name in set(RUNTIME_NAMES) - set(CLASSES) - set(FUNCTIONS):
        stub = STUB_MEMBERS[name]
        assert isinstance(stub, ast.AnnAssign) and ast.unparse(stub.annotation) == type(getattr(_core, name)).__name__


def test_package_ships_the_stub_and_marker():
    # The package imported here is the installed one in CI: this checks the wheel carries both
    # (py.typed tells type checkers to read the package's types at all, PEP 561).
    assert (PACKAGE_DIR / "_core.pyi").is_file()
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_stubtest(tmp_path):
    pytest.importorskip("mypy.stubtest")
    # The package found first is the one imported here: mypy reads its stub as an installed
    # package's, which it does only with py.typed, and without checking the package's .py files.
    search_path = [str(PACKAGE_DIR.parent)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, search_path)))
    completed = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--concise", "fastrnn._core"], cwd=tmp_path,
                               env=environment, capture_output=True, text=True, timeout=300)
    # Exactly what a stub cannot change: pybind11's classes have the metaclass
    # pybind11_builtins.pybind11_type, which no stub can name, and a class bound without a
    # constructor has pybind11's placeholder __init__(*args, **kwargs), which only raises. Their
    # absence fails too: stubtest reports nothing at all when mypy does not find the stub.
    expected = [f"fastrnn._core.{name} is inconsistent, metaclass differs" for name in CLASSES]
    expected += [f'fastrnn._core.{name}.__init__ is inconsistent, stub does not have *args parameter "args"'
                 for name in CLASSES if not has_constructor(getattr(_core, name))]
    assert sorted(completed.stdout.splitlines()) == sorted(expected), completed.stdout + completed.stderr
