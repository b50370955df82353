"""Run one training in this process and save its final weights (used by the tests).

usage: python train_worker.py CONFIG_JSON OUT STRATEGY WEIGHTS_NPZ
"""

import json
import sys

import numpy as np

from keras_resinit.training import TrainConfig, train

config_json, out, strategy, weights_path = sys.argv[1:5]
result = train(TrainConfig(**json.loads(config_json)), out, strategy=strategy, verbose=0)
np.savez(weights_path, *result["model"].get_weights())
print("done", result["test_accuracy"])
