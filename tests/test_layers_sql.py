"""Raw SQL lives only in kdstudio/core/store/: no other module of the package passes SQL to
`execute`/`query`, holds an SQL statement in a string, or reaches into a Store's
sqlite-utils database (`store.db`, `db["table"]`, `.table(...)`, `rows_where`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kdstudio

PACKAGE = Path(kdstudio.__file__).parent
STORE = PACKAGE / "core" / "store"
SQL_CALLS = {"execute", "executemany", "executescript", "query", "rows_where", "table"}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE TABLE|DROP|ALTER TABLE|"
                       r"ANALYZE|VACUUM|BEGIN|COMMIT)\b")
STATEMENT = re.compile(r"^\s*(SELECT\b.+\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|"
                       r"DELETE\s+FROM\b|PRAGMA\s+\w+)", re.IGNORECASE | re.DOTALL)


def _strings(node: ast.AST) -> list[str]:
    """The literal text in an expression (plain strings and the literal parts of f-strings)."""
    return [n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def sql_problems(source: str, name: str) -> list[str]:
    """One line per place in `source` that holds raw SQL or touches a Store's database."""
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in SQL_CALLS:
                texts = [t for arg in [*node.args, *(k.value for k in node.keywords)]
                         for t in _strings(arg)]
                by_name = called == "rows_where" or (called == "table"
                                                     and isinstance(func, ast.Attribute))
                if by_name or any(SQL_WORDS.search(t) for t in texts):
                    problems.append(f"{where}: SQL passed to {called}()")
        elif isinstance(node, ast.Attribute) and node.attr in {"db", "conn"} and isinstance(
                node.value, ast.Name) and node.value.id in {"store", "self"}:
            problems.append(f"{where}: reaches into {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "db":
            problems.append(f"{where}: a table of the database by db[...]")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and STATEMENT.match(node.value):
            problems.append(f"{where}: an SQL statement in a string")
    return problems


def test_the_detector_finds_raw_sql() -> None:
    bad = '''
def rows(store, run_id):
    store.db.execute("SELECT * FROM metrics WHERE run_id = ?", [run_id])
    conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    store.db["runs"].update(1, {})
    query = "UPDATE runs SET status = 'failed'"
    return conn.query("PRAGMA busy_timeout = 10")
'''
    found = sql_problems(bad, "bad.py")
    assert len([p for p in found if "SQL passed to execute()" in p]) == 2
    assert any("SQL passed to query()" in p for p in found)
    assert any("reaches into store.db" in p for p in found)
    assert any("db[...]" in p for p in found)
    assert any("bad.py:6: an SQL statement in a string" in p for p in found)
    clean = ('def f(job):\n    job.execute()\n    print("Select a run, then update it")\n'
             '    return table(rows)\n')
    assert sql_problems(clean, "clean.py") == []


def test_no_raw_sql_outside_the_store() -> None:
    problems: list[str] = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50 and any(STORE in f.parents for f in files)
    for path in files:
        if STORE in path.parents:
            continue
        problems += sql_problems(path.read_text(encoding="utf-8"),
                                 str(path.relative_to(PACKAGE.parent)))
    assert problems == [], "\n".join(problems)


def test_the_store_itself_is_where_the_sql_is() -> None:
    found = [p for path in sorted(STORE.glob("*.py"))
             for p in sql_problems(path.read_text(encoding="utf-8"), path.name)]
    assert any(p.startswith("queries.py") for p in found)  # the walk does see SQL
