"""The README's fixed-point example runs as printed and reports what it says."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_fixed_point_example_runs(capsys):
    section = README.read_text().split("## Fixed-point training with `model.fit`", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.strip()
    values = [float(v) for v in re.findall(r"[-+\d.e]+", printed)]
    assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values), printed
    kernel = namespace["model"].get_layer("dense").kernel.numpy()
    assert (kernel * 1024 == (kernel * 1024).round()).all()   # stored on s16.10
