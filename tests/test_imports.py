"""Imports stay light, free of side effects, and point one way (STYLE.md principle 7, ARCHITECTURE.md).

Two kinds of check:

* in fresh subprocesses, what importing a module really loads (``sys.modules`` afterwards);
* statically, the graph of every ``import`` statement in ``unmask/`` (also those inside functions,
  which run later but still make one module depend on another), read with :mod:`ast`: the direction
  ``errors, config <- models <- losses <- data <- train`` with ``faces``, ``synthetic``, ``hub`` and
  ``measure`` as ground, ``evaluate`` and ``bench`` never using ``train``, ``bench`` (which times anything)
  above ``evaluate`` (which never needs a benchmark), and no import cycle anywhere. A package's command
  line (``__main__``) obeys its package's rules: ``python -m unmask.synthetic`` may not reach the data layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("gradio", "matplotlib", "accelerate", "unmask.train", "lpips", "dlib", "insightface", "tensorboard")
PACKAGE = Path(__file__).resolve().parent.parent / "unmask"


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    return set(out.stdout.split())


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_import_unmask_loads_nothing_heavy():
    loaded = _modules_after("import unmask")
    assert "torch" not in loaded
    assert not {m for m in loaded if _within(m, HEAVY)}


def test_inference_path_does_not_import_training_or_ui():
    loaded = _modules_after("import unmask.pipeline, unmask.models.stylegan2, unmask.models.encoder, unmask.faces")
    assert not {m for m in loaded if _within(m, HEAVY)}


# ---------------------------------------------------------------------------------------------- the module graph
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _submodules(package: str) -> list[str]:
    return sorted(m for m in MODULES if _within(m, (package,)))


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(module: str) -> dict[str, bool]:
    """``{imported unmask module: at module level?}`` for every import statement of ``module``.

    ``from a import b`` counts as importing ``a.b`` when that is a module; importing ``a.b.c`` also
    imports the packages ``a`` and ``a.b`` (except those ``module`` itself lives in, which are already
    being imported); blocks under ``if TYPE_CHECKING:`` never run and are skipped.
    """
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, bool] = {}

    def add(target: str, top: bool) -> None:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in MODULES and name != module and not _within(module, (name,)):
                found[name] = found.get(name, False) or top

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, top)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, top)
            else:
                visit(child, inner)

    visit(ast.parse(MODULES[module].read_text(encoding="utf-8")), True)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle ``[a, b, …, a]`` of the graph, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_graph_sees_every_kind_of_import():
    assert GRAPH["unmask.pipeline"].get("unmask.invert") is False  # inside a method
    assert GRAPH["unmask.models.encoder"]["unmask.models.stylegan2"] is True  # `from … import`, module level
    assert GRAPH["unmask.models.encoder"]["unmask.hub"] is True
    assert "unmask.synthetic" in GRAPH["unmask.bench.synthetic"]  # the package of `from unmask.synthetic import`
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_no_import_cycle_at_module_level():
    cycle = _cycle({m: {t for t, top in targets.items() if top} for m, targets in GRAPH.items()})
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_even_through_imports_inside_functions():
    cycle = _cycle({m: set(targets) for m, targets in GRAPH.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


#: ARCHITECTURE.md "Dependency direction": modules under each key never import modules under the values.
GROUND = ("unmask.errors", "unmask.config", "unmask.precision", "unmask.hub", "unmask.faces", "unmask.synthetic",
          "unmask.measure")
ABOVE_GROUND = ("unmask.models", "unmask.losses", "unmask.data", "unmask.train", "unmask.invert", "unmask.pipeline",
                "unmask.evaluate", "unmask.bench", "unmask.convert", "unmask.bundle", "unmask.verify")
FORBIDDEN = {
    GROUND: ABOVE_GROUND,
    ("unmask.models",): ("unmask.losses", "unmask.data", "unmask.train", "unmask.invert", "unmask.pipeline",
                         "unmask.evaluate", "unmask.bench", "unmask.convert", "unmask.bundle", "unmask.verify"),
    ("unmask.losses",): ("unmask.data", "unmask.train", "unmask.pipeline", "unmask.evaluate", "unmask.bench",
                         "unmask.convert", "unmask.bundle", "unmask.verify"),
    ("unmask.data",): ("unmask.train", "unmask.pipeline", "unmask.evaluate", "unmask.bench", "unmask.convert",
                       "unmask.bundle", "unmask.verify"),
    # bundles: manifests, worlds and resolution sit below the pipeline, and so does verification (it takes the
    # pipeline as an argument); only the bundle builder (and its command) stands above the pipeline
    ("unmask.verify", "unmask.recovery", "unmask.loading", "unmask.bundle.manifest", "unmask.bundle.resolve",
     "unmask.bundle.worlds"): ("unmask.pipeline", "unmask.serving"),
    ("unmask.invert", "unmask.pipeline", "unmask.verify", "unmask.recovery", "unmask.loading", "unmask.serving",
     "unmask.bundle.manifest", "unmask.bundle.resolve", "unmask.bundle.worlds"): (
        "unmask.train", "unmask.data", "unmask.evaluate", "unmask.bench", "unmask.convert", "unmask.bundle.build",
        "unmask.bundle.__main__"),
    ("unmask.evaluate", "unmask.bench"): ("unmask.train", "unmask.convert", "unmask.bundle.build",
                                          "unmask.bundle.__main__"),
    ("unmask.bundle",): ("unmask.train", "unmask.data", "unmask.evaluate", "unmask.bench", "unmask.convert"),
    ("unmask.evaluate",): ("unmask.bench",),
}


def _entry_point(module: str) -> bool:
    """A package's ``__main__`` is a command line: an application on top of everything, imported by nothing."""
    return module.endswith(".__main__")


def test_verification_names_no_pipeline_type_even_for_type_checkers():
    # The pipeline uses verification; verification reads the pipeline's results from unmask.recovery and takes the
    # pipeline itself as an argument (a Protocol), so not even a TYPE_CHECKING import points back.
    tree = ast.parse(MODULES["unmask.verify"].read_text(encoding="utf-8"))
    named = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    named |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "unmask.recovery" in named and not {m for m in named if _within(m or "", ("unmask.pipeline",))}


def test_nothing_imports_a_command_line_entry_point():
    assert not sorted(f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets if _entry_point(t))


@pytest.mark.parametrize("sources", list(FORBIDDEN), ids=lambda sources: sources[0].removeprefix("unmask."))
def test_dependencies_point_one_way(sources):
    banned = FORBIDDEN[sources]
    wrong = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if _within(m, sources)
                   for t in targets if _within(t, banned))
    assert not wrong, "imports against ARCHITECTURE.md's direction:\n" + "\n".join(wrong)


def test_every_command_line_is_held_to_its_package_rules():
    # Only `python -m unmask` (the application) and `python -m unmask.train` (training stands on everything
    # below it) have no package rule to obey.
    ruled = {m for m in MODULES if _entry_point(m) and any(_within(m, sources) for sources in FORBIDDEN)}
    assert ruled == {m for m in MODULES if _entry_point(m)} - {"unmask.__main__", "unmask.train.__main__"}
    assert "unmask.data.__main__" in ruled and "unmask.synthetic.__main__" not in MODULES


def test_nothing_imports_the_convert_command():
    # convert uses hub, models and the pipeline's bundle builder; nothing imports it back.
    assert not sorted(m for m, targets in GRAPH.items() if "unmask.convert" in targets)


def _loaded_by_each(modules: list[str], banned: tuple[str, ...]) -> dict[str, list[str]]:
    """Import ``modules`` one after another in a fresh interpreter; the banned modules each one adds."""
    code = (
        "import importlib, json, sys\n"
        f"banned = {banned!r}\n"
        "out, seen = {}, set()\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    now = {m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in banned)}\n"
        "    out[name], seen = sorted(now - seen), seen | now\n"
        "print(json.dumps(out))\n"
    )
    import json

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"HF_HUB_OFFLINE": "1", "PATH": ""}, cwd=PACKAGE.parent)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # imports every module in a fresh interpreter; the static test above checks the same edges fast
@pytest.mark.parametrize(("packages", "banned"), [
    (("unmask.evaluate", "unmask.bench"), ("unmask.train",)),
    (("unmask.models",), ("unmask.losses", "unmask.train")),
])
def test_importing_a_package_and_its_submodules_loads_nothing_above_it(packages, banned):
    modules = [m for p in packages for m in _submodules(p)]
    assert len(modules) > len(packages)  # the packages and their submodules
    loaded = _loaded_by_each(modules, banned)
    assert not any(loaded.values()), {m: mods for m, mods in loaded.items() if mods}


def _defines_main(module: str) -> bool:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def test_command_lines_run_their_modules_by_name():
    # `python -m unmask.bench SUITE` and `python -m unmask.evaluate COMMAND` import what they run only then,
    # so the training parts (the encoder step benchmark, the identity ablation) can live in unmask.train.
    from unmask.bench import SUITES
    from unmask.evaluate.__main__ import COMMANDS

    assert list(SUITES) == ["models", "generator", "faces", "synthetic", "pipeline", "train", "identity", "app",
                            "provenance"]
    assert SUITES["pipeline"] == ("unmask.bench.pipeline",) and SUITES["train"] == ("unmask.train.bench",)
    assert set(COMMANDS) == {"ablation-identity", "generator", "unmasking", "samples", "photos", "world"}
    for module in [*(m for modules in SUITES.values() for m in modules), *COMMANDS.values()]:
        assert module in MODULES and _defines_main(module), module
