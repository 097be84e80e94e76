"""The versions the package claims are the versions its matrix tests: the classifiers in
pyproject.toml, the sessions of noxfile.py and the README's *Tested versions* table agree."""

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def noxfile_matrix() -> dict[str, str]:
    """noxfile.py's ``MATRIX`` (Django series -> Python), read without importing nox."""
    for node in ast.parse((ROOT / "noxfile.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "MATRIX" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("noxfile.py has no MATRIX")


def classified(pattern: str) -> set[str]:
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    return {m[1] for c in classifiers if (m := re.fullmatch(pattern, c))}


def readme_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Tested versions", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| (\d+\.\d+)(?: LTS)? \| (3\.\d+) \|", section, re.MULTILINE))


def test_classifiers_readme_and_noxfile_name_the_same_versions():
    matrix = noxfile_matrix()
    assert classified(r"Framework :: Django :: (\d+\.\d+)") == set(matrix)
    assert classified(r"Programming Language :: Python :: (3\.\d+)") == set(matrix.values())
    assert readme_table() == matrix
