"""The package's namespaces show their public API only: __all__ lists it, dir() and
`from ... import *` give exactly that, and the helpers a module imports (numpy, math, base's
checks) stay out of sight."""
import inspect

import pytest

import fastrnn

PUBLIC_MODULES = [fastrnn, fastrnn.data, fastrnn.distributed, fastrnn.io, fastrnn.losses, fastrnn.optim,
                  fastrnn.reference]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_a_public_module_lists_exactly_its_public_names(module):
    listed = set(module.__all__)
    assert len(listed) == len(module.__all__), "a name is listed twice"
    assert [name for name in listed if not hasattr(module, name)] == []
    assert set(dir(module)) - {"__version__"} == listed
    star = {}
    exec(f"from {module.__name__} import *", star)
    assert set(star) - {"__builtins__"} == listed
    defined_here = {name for name, value in vars(module).items()
                    if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
                    and value.__module__ == module.__name__}
    assert defined_here - listed == set(), "a public function or class is missing from __all__"
    assert {"np", "math", "os", "sys", "warnings", "positive_int", "float_array"} & set(dir(module)) == set()


def test_the_package_shows_its_public_modules_only():
    modules = sorted(name for name in dir(fastrnn) if inspect.ismodule(getattr(fastrnn, name)))
    assert modules == ["data", "distributed", "io", "losses", "optim", "reference"]
    assert "__version__" in dir(fastrnn)
