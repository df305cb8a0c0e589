"""LoopController under tf.distribute: results must match the single-device run."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from loop_controller_testlib import DIST_BATCH, dist_config, dist_data, dist_model
from tensorflow_kappa.callbacks import LoopController

HERE = Path(__file__).resolve().parent


def single_device_run(initial_weights, packed=False):
    with tf.device("/cpu:0"):
        model = dist_model(packed=packed)
        model.set_weights(initial_weights)
        data = dist_data(packed=packed)
        x, y = (data, None) if packed else data
        cb = LoopController(dist_config(own_loss=not packed))
        history = model.fit(x, y, batch_size=DIST_BATCH, epochs=2, shuffle=False, verbose=0,
                            callbacks=[cb])
    return model.get_weights(), history.history, cb


def test_mirrored_strategy_over_two_cpus_matches_single_device(mirrored_strategy):
    initial = dist_model().get_weights()
    ref_weights, ref_history, ref_cb = single_device_run(initial)

    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = dist_model()
    model.set_weights(initial)
    x, y = dist_data()
    cb = LoopController(dist_config())
    history = model.fit(x, y, batch_size=DIST_BATCH, epochs=2, shuffle=False, verbose=0,
                        callbacks=[cb])
    np.testing.assert_array_equal(cb.history["gate"], ref_cb.history["gate"])
    np.testing.assert_array_equal(cb.history["reg"], ref_cb.history["reg"])
    assert not all(np.allclose(a, b) for a, b in zip(initial, ref_weights))  # it trained
    for a, b in zip(model.get_weights(), ref_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "mae", "loss_gate", "loss_reg"):
        np.testing.assert_allclose(history.history[key], ref_history[key], rtol=1e-5,
                                   err_msg=key)
    # 4 batches/epoch, 2 epochs: gate applies 8 times, reg on batches 0, 3, 6
    assert int(model.optimizer.iterations.numpy()) == 8 + 3



@pytest.mark.slow
def test_multi_worker_mirrored_strategy_two_processes_matches_single_device(tmp_path, two_workers):
    initial = dist_model(packed=True).get_weights()
    np.savez(tmp_path / "initial.npz", *initial)
    two_workers(HERE / "loop_controller_mwms_worker.py",
                lambda i: [tmp_path / "initial.npz", tmp_path / f"worker{i}.npz"], timeout=120)

    ref_weights, ref_history, ref_cb = single_device_run(initial, packed=True)
    assert not all(np.allclose(a, b) for a, b in zip(initial, ref_weights))  # it trained
    for index in range(2):
        with np.load(tmp_path / f"worker{index}.npz") as result:
            weights = [result[f"arr_{i}"] for i in range(len(ref_weights))]
            np.testing.assert_array_equal(result["gate"], ref_cb.history["gate"])
            np.testing.assert_allclose(result["loss"], ref_history["loss"], rtol=1e-5)
        for a, b in zip(weights, ref_weights):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
