"""fastrnn: fast CPU recurrent networks."""
from . import _core
