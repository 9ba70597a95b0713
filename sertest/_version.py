"""The package version, in a module of its own so that any layer may read it.

``sertest/__init__.py`` re-exports it; code inside the package imports it from here
(``from .._version import __version__``), never from the package root, which sits above
every layer (see docs/architecture.md).

>>> from sertest._version import __version__
>>> __version__.count(".") >= 1
True
"""

__version__ = "0.1.0"
