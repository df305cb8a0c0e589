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


@pytest.mark.parametrize("argv, flag", [
    (["arithmetic", "--epochs", "-2"], "--epochs"),
    (["arithmetic", "--seeds", "0"], "--seeds"),
    (["bench", "--size", "0"], "--size"),
    (["nalm-benchmark", "--seeds", "x"], "--seeds"),
])
def test_counts_must_be_positive_integers(argv, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and argv[-1] in err
