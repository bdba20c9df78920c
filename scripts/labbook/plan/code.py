"""Which library code each step runs, found from its notebook's imports: a step's params carry a
hash of exactly those modules' source, so editing one reruns the steps that use it and no other.

Every import is followed, also one inside a function (a step may import lazily), through
`from . import x`, `from .plan import y` and `import labbook.z`, and so is a function named as
the string "labbook.module:function" (a dataset kind's loader, see datasets.py); modules outside
labbook are not hashed (their versions are the env's business)."""

import ast
import hashlib
import json
import re
from pathlib import Path

PACKAGE = "labbook"
NAMED_FUNCTION = re.compile(rf"^({PACKAGE}(\.\w+)+):\w+$")


def _module_file(library: Path, dotted: str) -> Path | None:
    """The file of labbook.a.b under library (the labbook folder), or None."""
    if dotted != PACKAGE and not dotted.startswith(PACKAGE + "."):
        return None
    parts = dotted.split(".")[1:]
    base = library.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST, module: str, is_package: bool, named: bool = True) -> set[str]:
    """Dotted names (absolute) that a module's code imports, maybe not all of labbook; with
    named, also the modules of functions named as "labbook.module:function"."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)  # maybe modules
        elif named and isinstance(node, ast.Constant) and isinstance(node.value, str):
            function = NAMED_FUNCTION.match(node.value)
            if function:
                found.add(function[1])
    return found


def notebook_imports(notebook: Path) -> set[str]:
    """labbook modules a notebook's code cells import."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    names = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        names |= _imports(ast.parse("\n".join(lines)), "__notebook__", False)
    return names


def modules(library: Path, entry: set[str]) -> list[Path]:
    """Every labbook module file reachable from the dotted names in entry, sorted."""
    library = Path(library)
    seen: dict[str, Path] = {}
    todo = sorted(name for name in entry if name == PACKAGE or name.startswith(PACKAGE + "."))
    while todo:
        name = todo.pop()
        path = _module_file(library, name)
        if path is None or name in seen:
            continue
        seen[name] = path
        # a submodule imports its packages' __init__ first
        parents = [name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = _imports(tree, name, path.name == "__init__.py") | set(parents)
        todo += sorted(n for n in found if n.startswith(PACKAGE) and n not in seen)
    return sorted(set(seen.values()))


def step_modules(library: Path, notebook: Path, extra=()) -> list[Path]:
    """The library files a step runs: its notebook's imports and `extra` (dotted names the rule's
    shell command runs, such as labbook.runner), followed through every import."""
    return modules(library, notebook_imports(notebook) | set(extra))


def code_hash(library: Path, notebook: Path, extra=()) -> str:
    digest = hashlib.sha256()
    for path in step_modules(library, notebook, extra):
        digest.update(path.relative_to(Path(library).parent).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def import_graph(library: Path) -> dict[str, set[str]]:
    """{labbook module: the labbook modules it imports (also inside functions)}, every module
    of the library. A loader named by a string is no import: the plan names step functions it
    never calls."""
    library = Path(library)
    graph = {}
    for path in sorted(library.rglob("*.py")):
        parts = path.relative_to(library.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = _imports(tree, name, path.name == "__init__.py", named=False)
        graph[name] = {n for n in found if _module_file(library, n) is not None and n != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a graph: each strongly connected group of two or more modules."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def main() -> int:
    """`python -m labbook.plan.code`: the library's import cycles and the plan's imports of step
    modules (both should be none), then the modules each step notebook runs."""
    library = Path(__file__).resolve().parents[1]
    graph = import_graph(library)
    found = cycles(graph)
    print(f"import cycles: {found or 'none'}")
    plan = f"{PACKAGE}.plan"
    outside = sorted(
        f"{module} → {imported}"
        for module, imports in graph.items()
        if module.startswith(plan)
        for imported in imports
        if not imported.startswith(plan)
    )
    print(f"plan → step imports: {outside or 'none'}")
    for notebook in sorted((library.parents[1] / "notebooks").glob("*.ipynb")):
        names = [p.relative_to(library).as_posix() for p in step_modules(library, notebook)]
        print(f"{notebook.stem}: {' '.join(names)}")
    return 1 if found or outside else 0


if __name__ == "__main__":
    raise SystemExit(main())
