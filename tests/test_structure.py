"""The house: the product's imports form a strict hierarchy, even through imports inside functions, and the
README and the docs say what each module owns and link to what exists."""

import ast
import re

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


ON_THE_PATH = "sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))"


def test_every_tool_runs_as_a_file_too():
    """``python benchmarks/throughput.py`` or ``python experiments/he2016.py`` works as ``python -m`` does: without
    the line that puts the checkout on the path first, they ended in "ModuleNotFoundError: No module named
    'tf_setup'" (or 'experiments')."""
    checkout = {path.stem for path in ROOT.glob("*.py")} | {"experiments", "benchmarks"}
    for path in sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("experiments/*.py")]):
        source = path.read_text()
        imports = [match.start() for match in re.finditer(r"^(?:import|from) (\w+)", source, flags=re.M)
                   if match.group(1) in checkout]
        if imports and '__name__ == "__main__"' in source:
            assert ON_THE_PATH in source and source.index(ON_THE_PATH) < imports[0], path.name


def _anchors(page):
    """GitHub's anchors for a Markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_in_the_docs_resolves():
    """Pages moved out of the README (issue 36) keep their links true: each file and heading a link names exists."""
    pages = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "experiments" / "RESULTS.md",
             *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "experiments" / "results").glob("*/README.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
