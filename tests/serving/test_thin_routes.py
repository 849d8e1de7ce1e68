"""Routes are thin: no module of the web layer opens, commits or rolls back a transaction.

Writes go through `governance.review.service`, whose `unit_of_work` takes the write lock and
commits or rolls back; a route that called `begin_write` or `commit` itself could forget the
lock (and exclusive claiming on SQLite with it) or commit half a use case.
"""

from __future__ import annotations

import ast
from pathlib import Path

import serving

SERVING_DIR = Path(serving.__file__).resolve().parent
#: Calls only the service layer may make.
TRANSACTION_CALLS = frozenset({"begin_write", "commit", "rollback", "begin", "begin_nested"})


def _transaction_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "governance.review.db":
            found += [
                f"{path.name}:{node.lineno} imports {alias.name}"
                for alias in node.names
                if alias.name == "begin_write"
            ]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in TRANSACTION_CALLS:
            found.append(f"{path.name}:{node.lineno} calls {name}()")
    return found


def test_the_scan_finds_a_route_that_commits(tmp_path: Path) -> None:
    route = tmp_path / "bad_route.py"
    route.write_text(
        "from governance.review.db import begin_write\n"
        "def claim(session):\n"
        "    begin_write(session)\n"
        "    session.commit()\n"
    )
    assert _transaction_calls(route) == [
        "bad_route.py:1 imports begin_write",
        "bad_route.py:3 calls begin_write()",
        "bad_route.py:4 calls commit()",
    ]


def test_no_web_module_owns_a_transaction() -> None:
    modules = sorted(SERVING_DIR.glob("*.py"))
    assert any(m.name == "review_api.py" for m in modules)
    found = [call for module in modules for call in _transaction_calls(module)]
    assert not found, (
        "routes call governance.review.service (one unit of work per use case) instead of "
        "opening transactions: " + "; ".join(found)
    )
