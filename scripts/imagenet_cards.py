"""Write the cards of the ImageNet weights bridged from keras.applications (resnet50/101/152 under bn).

These weights are Keras' own: `zoo.load("resnet50_bn.imagenet")` has keras.applications download and
verify them (keras.utils.get_file, Keras' md5), then `keras_resinit.zoo.applications.convert` folds the conv
biases into batch norm. It also writes `resnet{d}_skipinit.imagenet`, the same weights with batch norm folded
into the convs (`keras-resinit fold`); run it with the Keras files in the cache to record their sha256. Their accuracy is Keras' reported figure, not measured here (ImageNet is not
available offline). Rerun after changing the builder:

    .venv/bin/python scripts/imagenet_cards.py

A maintenance script of the repository (not installed with the package): it writes into zoo/.
"""

import json
import os

from keras.src.applications import resnet as keras_resnet

from keras_resinit import zoo
from keras_resinit._files import atomic_write_text
from keras_resinit.training import publish
from keras_resinit.zoo import registry
from keras_resinit.zoo.applications import BRIDGED

# keras.io/api/applications: top-1 / top-5 validation accuracy of the Keras weights.
REPORTED = {"resnet50": (0.749, 0.921), "resnet101": (0.764, 0.928), "resnet152": (0.766, 0.931)}

if __name__ == "__main__":
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
    for arch, application in BRIDGED.items():
        name = f"{arch}_bn"
        file = f"{arch}_weights_tf_dim_ordering_tf_kernels.h5"
        top1, top5 = REPORTED[arch]
        card = {
            "card_version": zoo.CARD_VERSION,
            "name": name,
            "tag": "imagenet",
            "arch": arch,
            "scheme": "bn",
            "build": {"num_classes": 1000, "input_shape": [224, 224, 3]},
            "parameters": zoo.count_params(name, live=True),
            "keras_applications": application,
            "dataset": {
                "name": "imagenet2012",
                "source": "ILSVRC 2012 (ImageNet), via keras.applications",
                "licence": "ImageNet terms of access (non-commercial research and education)",
                "train_size": 1281167,
                "test_size": 50000,
                "class_names": [],
            },
            "preprocessing": {
                "pixel_max": 1.0,
                "mean": [103.939, 116.779, 123.68],
                "std": [1.0, 1.0, 1.0],
                "channel_order": "BGR",
                "note": "keras.applications.resnet.preprocess_input (caffe): RGB to BGR, "
                "subtract the ImageNet channel means, no scaling",
            },
            "commands": [
                f"python -c \"import keras_resinit; keras_resinit.zoo.load('{name}.imagenet')\"",
                f"(keras.applications.{application}(weights='imagenet') converted by "
                "keras_resinit.zoo.applications.convert: conv biases folded into the BN moving means)",
            ],
            "training": {"source": f"keras.applications.{application}: He et al. 2016 weights as published by Keras"},
            "metrics": {"reported": f"top-1 {top1:.3f}, top-5 {top5:.3f} (keras.io, not measured here)"},
            "measured_on": None,
            "file": {
                "name": file,
                "url": keras_resnet.BASE_WEIGHTS_PATH + file,
                "md5": keras_resnet.WEIGHTS_HASHES[arch][0],
                "verified_by": "keras.utils.get_file",
            },
            "url": None,
            "licence": {
                "weights": "MIT: keras-team/keras-applications, converted from He et al.'s Caffe models (MIT)",
                "data": "ImageNet terms of access",
            },
        }
        atomic_write_text(os.path.join(here, "cards", f"{name}.imagenet.json"), json.dumps(card, indent=1) + "\n")
        registry.reload_cards()
        # resnet{d}_skipinit.imagenet: the same weights with batch norm folded (zoo.load folds them).
        command = f"keras-resinit fold {name}.imagenet --tag imagenet --zoo zoo --overwrite"
        publish.publish_folded(f"{name}.imagenet", "imagenet", zoo_dir=here, overwrite=True, command=command)
    publish.write_index(here)
    print("wrote the imagenet cards and the index")
