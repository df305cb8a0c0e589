"""One worker of the LowPrecisionOptimizer MultiWorkerMirroredStrategy test (a subprocess).

Usage: python low_precision_mwms_worker.py INITIAL_WEIGHTS.npz OUTPUT.npz
TF_CONFIG (two workers on localhost) is set by the test.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from low_precision_testlib import BATCH, data, make_model  # noqa: E402
from tensorflow_kappa.callbacks import QuantizationMonitor  # noqa: E402


def main(initial: str, output: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = make_model()
    with np.load(initial) as w:
        model.set_weights([w[f"arr_{i}"] for i in range(len(w.files))])
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices(data()).batch(BATCH).with_options(options)
    monitor = QuantizationMonitor(every=2)
    model.fit(dataset, epochs=2, verbose=0, callbacks=[monitor])
    keys = sorted(monitor.records)
    np.savez(output, *model.get_weights(), keys=np.array(keys),
             records=np.array([monitor.records[k] for k in keys]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
