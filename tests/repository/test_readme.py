"""The README is what a README is for, and what it says holds: the quick start is the
two commands of scripts/quickstart.sh (the second builds and checks the
documentation), its links lead to files that exist, and it leads to every guide."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
QUICKSTART = REPO / "scripts" / "quickstart.sh"


def _section(title: str) -> str:
    return README.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_quick_start_is_two_commands_of_the_quickstart_script():
    (block,) = re.findall(r"```bash\n(.*?)```", _section("Quick start"), re.S)
    commands = [line.split("#")[0].split() for line in block.strip().splitlines()]
    assert commands == [["bash", "scripts/quickstart.sh", "demo"],
                        ["bash", "scripts/quickstart.sh", "test"]]
    assert re.search(r'case "\$mode" in demo\|test\)', QUICKSTART.read_text())


def test_the_second_command_builds_and_checks_the_documentation():
    script = QUICKSTART.read_text()
    test_mode = script.split('if [ "$mode" = demo ]', 1)[1]
    assert 'exec "$python" -m pytest "$@"' in test_mode
    assert 'testpaths = ["tests"]' in (REPO / "pyproject.toml").read_text()
    assert (REPO / "tests" / "docs" / "test_docs_build.py").is_file()
    assert (REPO / "tests" / "docs" / "test_docs_browser.py").is_file()
    assert '-e ".[docs]"' in script                       # the documentation tools
    assert "chromium" in script and "chromium-driver" in script


def test_every_link_of_the_readme_leads_to_a_file():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert targets
    missing = [t for t in targets if "://" not in t and not (REPO / t).is_file()]
    assert not missing, missing


def test_the_readme_leads_to_every_guide():
    guides = {f"docs/guides/{p.name}" for p in (REPO / "docs" / "guides").glob("*.md")}
    linked = set(re.findall(r"\]\((docs/guides/[^)]+)\)", README.read_text()))
    assert guides and guides == linked


def test_tests_mirror_the_package():
    """One test folder per subpackage; besides them docs/ (the documentation's build and
    checks), references/ (the NumPy references and cases the tests share) and repository/
    (the tests of the repository around the package: build, release, README, sources)."""
    packages = {p.parent.name for p in (REPO / "tensorflow_kappa").glob("*/__init__.py")}
    test_folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir()
                    and not p.name.startswith((".", "__"))}
    assert test_folders == packages | {"docs", "references", "repository"}, (
        packages, test_folders)
