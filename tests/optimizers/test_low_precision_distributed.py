"""LowPrecisionOptimizer, Quantize and QuantizationMonitor under MultiWorkerMirroredStrategy."""
from pathlib import Path

import numpy as np
import pytest

from low_precision_testlib import BATCH, PRECISION, data, make_model
from tensorflow_kappa.callbacks import QuantizationMonitor
from tensorflow_kappa.quantization import PrecisionDict

HERE = Path(__file__).resolve().parent



@pytest.mark.slow
def test_two_worker_processes_match_one_device(tmp_path, two_workers):
    initial = make_model().get_weights()
    np.savez(tmp_path / "initial.npz", *initial)
    two_workers(HERE / "low_precision_mwms_worker.py",
                lambda i: [tmp_path / "initial.npz", tmp_path / f"worker{i}.npz"], timeout=300)

    model = make_model()
    model.set_weights(initial)
    monitor = QuantizationMonitor(every=2)
    model.fit(data()[:, :4], epochs=2, batch_size=BATCH, shuffle=False, verbose=0,
              callbacks=[monitor])
    precision = PrecisionDict(PRECISION)
    for index in range(2):
        with np.load(tmp_path / f"worker{index}.npz") as result:
            for i, (v, ref) in enumerate(zip(model.weights, model.get_weights())):
                got = result[f"arr_{i}"]
                fmt = precision.format(v.path.split("/")[-2],
                                       "bias" if v.path.endswith("bias") else "weight")
                scaled = got.astype(np.float64) * 2.0 ** fmt.frac_bits
                assert np.array_equal(scaled, np.round(scaled)), v.path   # on the grid
                np.testing.assert_allclose(got, ref, rtol=0, atol=2.01 * fmt.lsb, err_msg=v.path)
            keys = list(result["keys"])
            assert keys == sorted(monitor.records)
            assert "underflow/hidden/update" in keys and "saturation/hidden_quantize/forward" in keys
            np.testing.assert_allclose(result["records"],
                                       np.array([monitor.records[k] for k in keys]),
                                       rtol=0.05, atol=0.03)
