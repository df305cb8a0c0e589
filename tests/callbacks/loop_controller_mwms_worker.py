"""One worker of the MultiWorkerMirroredStrategy test (run as a subprocess).

Usage: python loop_controller_mwms_worker.py INITIAL_WEIGHTS.npz OUTPUT.npz
TF_CONFIG (two workers on localhost) is set by the test. The model reads its
target from the last input column: see PackedTargetMLP for the Keras 3.15
defect this avoids.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from loop_controller_testlib import DIST_BATCH, dist_config, dist_data, dist_model  # noqa: E402
from tensorflow_kappa.callbacks import LoopController  # noqa: E402


def main(initial: str, output: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = dist_model(packed=True)
    with np.load(initial) as w:
        model.set_weights([w[f"arr_{i}"] for i in range(len(w.files))])
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = (tf.data.Dataset.from_tensor_slices(dist_data(packed=True))
            .batch(DIST_BATCH).with_options(options))
    cb = LoopController(dist_config(own_loss=False))
    history = model.fit(data, epochs=2, verbose=0, callbacks=[cb])
    np.savez(output, *model.get_weights(), loss=np.array(history.history["loss"]),
             gate=np.array(cb.history["gate"]), traces=np.array(cb.trace_count))


if __name__ == "__main__":
    main(*sys.argv[1:3])
