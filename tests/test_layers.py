"""The import structure: every import of a gpuprop module goes to a layer
below its own in docs/architecture.md's table, and there is no import cycle.
Imports inside `if __name__ == "__main__":` belong to the script entry point,
not to the module, and are not counted."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "gpuprop"


def layers():
    """module name (e.g. 'numpy/_base') -> layer index (0 at the bottom)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    rows = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    return {m.strip(): len(rows) - 1 - i for i, row in enumerate(rows) for m in row.split(",")}


def module_name(path):
    rel = path.relative_to(PKG).with_suffix("").as_posix()
    return rel


def imports(path):
    """The gpuprop modules `path` imports, as table names (also lazy imports)."""
    here = module_name(path).split("/")
    package = here if here[-1] == "__init__" else here[:-1]
    package = [p for p in package if p != "__init__"]
    found = set()
    tree = ast.parse(path.read_text())
    tree.body = [n for n in tree.body if not _is_main_block(n)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] + (
                node.module.split(".") if node.module else [])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gpuprop"):
            base = node.module.split(".")[1:]
        else:
            continue
        for alias in node.names:
            found.add(_resolve(base + [alias.name]) or _resolve(base))
    return found - {module_name(path)}


def _is_main_block(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _resolve(parts):
    """The table name of the module `parts` names, or None if it names none."""
    path = PKG.joinpath(*parts) if parts else PKG
    if path.with_suffix(".py").exists():
        return "/".join(parts)
    if (path / "__init__.py").exists():
        return "/".join(parts + ["__init__"])
    return None


def graph():
    return {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def test_every_module_is_in_the_table():
    missing = sorted(set(graph()) - set(layers()))
    assert not missing, f"add these modules to the table in docs/architecture.md: {missing}"


def test_imports_go_down_the_layers():
    rank, wrong = layers(), []
    for mod, deps in sorted(graph().items()):
        for dep in sorted(deps):
            if dep in rank and rank[dep] >= rank.get(mod, -1):
                wrong.append(f"{mod} (layer {rank.get(mod)}) imports {dep} (layer {rank[dep]})")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_no_import_cycle():
    g, state, cycles = graph(), {}, []

    def visit(m, path):
        state[m] = "open"
        for d in sorted(g.get(m, ())):
            if state.get(d) == "open":
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"
    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
