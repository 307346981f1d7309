"""The house: the product's imports form a strict hierarchy, even through imports inside functions, and the
README says what each module owns."""

import ast

from conftest import ROOT

PACKAGES = ("experiments", "benchmarks")


def _product_modules():
    """Module name -> path of every product module: the top-level files, experiments/ and benchmarks/."""
    modules = {path.stem: path for path in ROOT.glob("*.py")}
    for package in PACKAGES:
        modules.update({f"{package}.{path.stem}": path for path in (ROOT / package).glob("*.py")
                        if path.stem != "__init__"})
    return modules


def _imports(path, modules):
    """The product modules ``path`` imports anywhere in it (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def _cycle(graph):
    """One import circle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if child not in state:
                found = visit(child, path + [child])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_imports_form_a_hierarchy_without_circles():
    modules = _product_modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert graph["run_config"] >= {"hardware"} and "cifar10_train" not in graph["run_config"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    """The walker sees imports inside functions, so a circle closed there fails the test above."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    import a\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert _cycle(graph) == ["a", "b", "a"]


def test_the_readme_says_what_each_top_level_module_owns():
    """A new module gets its row in the README's file table (tf_setup.py went without one)."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("What each file owns:"):]
    missing = [path.name for path in sorted(ROOT.glob("*.py")) if f"| `{path.name}` |" not in table]
    assert not missing, f"README.md's file table has no row for {missing}"
