"""Which files have a grammar (``grammars.py``), known without loading one: the agent side
asks it at every write, and only a file of a known language pays for tree-sitter.
Standard library only (the bridge imports it).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import posixpath
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# The PyPI grammar wheels (module, function giving the language), loaded on first use.
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "javascript": ("tree_sitter_javascript", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
}
SUFFIXES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
}


def language_of(path: str) -> str | None:
    """The grammar for ``path``'s suffix, or None when no grammar reads it."""
    return SUFFIXES.get(posixpath.splitext(path.replace("\\", "/"))[1].lower())


def grammar(language: str) -> object:
    """The tree-sitter language pointer of a grammar wheel, for ``tree_sitter.Language``.

    Its compiled ``_binding`` is loaded straight from the wheel's folder: the package's
    ``__init__`` imports ``importlib.resources`` for its query files, which would cost a
    bridge call (a process per event) more than the grammar itself.
    """
    package, function = GRAMMARS[language]
    binding = _binding(package)
    if binding is None:  # laid out otherwise: the package's own import
        binding = importlib.import_module(package)
    return getattr(binding, function)()


def tree_sitter() -> ModuleType:
    """tree-sitter's compiled part, which holds all of its classes (``Parser``, ``Language``,
    ``Node``…), loaded as the grammars are: the package's ``__init__`` imports ``typing``
    for one Protocol, milliseconds of a bridge call."""
    binding = _binding("tree_sitter")
    return importlib.import_module("tree_sitter") if binding is None else binding


def _binding(package: str) -> ModuleType | None:
    name = f"{package}._binding"
    if name in sys.modules:
        return sys.modules[name]
    for entry in sys.path:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(entry or ".", package, "_binding" + suffix)
            if os.path.isfile(path):
                loader = importlib.machinery.ExtensionFileLoader(name, path)
                spec = importlib.machinery.ModuleSpec(name, loader, origin=path)
                module = loader.create_module(spec)
                loader.exec_module(module)
                sys.modules[name] = module
                return module
    return None
