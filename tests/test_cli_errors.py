"""Bad input on the command line ends with the package's message, not a traceback."""
import pytest

from tensorflow_kappa import cli


@pytest.mark.parametrize("argv, expected", [
    (["arithmetic", "--expression", "x1 + * x2", "--epochs", "1"], "^"),
    (["arithmetic", "--layers", "3,a", "--epochs", "1"], "'3,a'"),
    (["ablation", "--precision", "s99.1", "--epochs", "1"], "bits=99"),
])
def test_bad_input_exits_with_message(argv, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kappa {argv[0]}: error:") and expected in err
    assert "Traceback" not in err
