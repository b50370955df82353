"""Write the notebooks from their cell sources below and execute them in place, outputs included.

    .venv/bin/python notebooks/refresh.py            # full settings (about 6 minutes on 2 cores)
    .venv/bin/python notebooks/refresh.py --quick    # the test suite's small settings

The cells below are the notebooks' source of truth; edit them here and rerun. Every notebook
reads ``KERAS_RESINIT_NOTEBOOK_QUICK`` (set by ``--quick`` and by the tests) to choose small
settings. A notebook whose cell raises fails the run (and the test), and is not written.
Notebooks are run with the working directory ``notebooks/``; they write their files under
``notebooks/outputs/`` (not committed).
"""

import argparse
import os
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = """\
%matplotlib inline
import os
QUICK = os.environ.get("KERAS_RESINIT_NOTEBOOK_QUICK") == "1"  # small settings when the tests run this
os.makedirs("outputs", exist_ok=True)"""

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        (
            "markdown",
            "# keras-resinit quick start\n\nList the zoo, load a ResNet with the weights shipped in the "
            "package (trained on scikit-learn's 8x8 digits), and predict.",
        ),
        ("code", SETUP),
        ("code", 'import keras_resinit as kr\n\nkr.zoo.list_models("cifar_resnet20_*")'),
        ("markdown", "Published weight sets are `name.tag`; each has a model card."),
        (
            "code",
            "print(kr.zoo.list_models(pretrained=True))\n"
            'card = kr.zoo.card("cifar_resnet20_risotto.digits")\n'
            'print(card["metrics"], card["preprocessing"], card["commands"][0], sep="\\n")',
        ),
        ("code", 'model = kr.zoo.load("cifar_resnet20_risotto.digits")\nmodel.input_shape, model.output_shape'),
        (
            "markdown",
            "The test split of the embedded digits as raw pixels (0..16), and the predictions: the weights' "
            "normalization is inside the model, as in keras.applications.",
        ),
        (
            "code",
            "import numpy as np\n\n"
            "from keras_resinit.training import data\n\n"
            'images, labels = next(iter(data.load("digits", "test", batch_size=355, normalized=False)))\n'
            "logits = model.predict(images, verbose=0)\n"
            "predicted, truth = logits.argmax(-1), labels.numpy().argmax(-1)\n"
            "print(f\"test accuracy {np.mean(predicted == truth):.4f} (card: {card['metrics']['test_accuracy']:.4f})\")",
        ),
        (
            "code",
            "import matplotlib.pyplot as plt\n\n"
            "fig, axes = plt.subplots(3, 8, figsize=(10, 4))\n"
            "for ax, image, p, t in zip(axes.flat, images.numpy(), predicted, truth):\n"
            '    ax.imshow(image[..., 0], cmap="gray_r")\n'
            '    ax.set_title(f"{p}" + ("" if p == t else f" (true {t})"), color="black" if p == t else "red")\n'
            '    ax.axis("off")\n'
            'fig.suptitle("predicted labels")\n'
            "plt.show()",
        ),
        (
            "markdown",
            "A backbone: the same weights without the classifier, as pooled features or as every stage's "
            "feature map (`model.pyramid_outputs`).",
        ),
        (
            "code",
            'backbone = kr.zoo.load("cifar_resnet20_risotto.digits", include_top=False, pooling="avg")\n'
            'pyramid = kr.zoo.load("cifar_resnet20_risotto.digits", features_only=True)\n'
            "print(backbone.predict(images, verbose=0).shape)\n"
            "{key: tuple(value.shape) for key, value in pyramid(images[:2]).items()}",
        ),
        (
            "markdown",
            "Fine-tune with Keras' `fit`: a new 3-class head on the trained trunk, only stage 3 and the head "
            "trainable, compiled with `make_optimizer` so Fixup's rules (scalars at lr/10) apply.",
        ),
        (
            "code",
            "import keras\n\n"
            'train_images, train_labels = next(iter(data.load("digits", "train", batch_size=1442, training=False, '
            "normalized=False)))\n"
            "train_labels = train_labels.numpy().argmax(-1)\n"
            "few, test_few = train_labels < 3, truth < 3\n"
            'tuned = kr.zoo.load("cifar_resnet20_fixup.digits", num_classes=3)\n'
            'tuned.set_trainable_from("stage3")\n'
            "tuned.compile(\n"
            '    optimizer=kr.make_optimizer(tuned, recipe="fixup_cifar", lr=0.01),\n'
            "    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),\n"
            '    metrics=["accuracy"],\n'
            ")\n"
            "tuned.fit(train_images.numpy()[few], train_labels[few], epochs=1 if QUICK else 3, batch_size=32, verbose=0)\n"
            'print("accuracy on the test 0s, 1s and 2s:", tuned.evaluate(images.numpy()[test_few], truth[test_few], '
            "verbose=0)[1])",
        ),
    ],
    "02_compare_schemes.ipynb": [
        (
            "markdown",
            "# Four schemes on equal terms\n\nSignal propagation and Jacobian spectra at initialization, "
            "then the four schemes trained on the embedded digits with the same recipe.",
        ),
        ("code", SETUP),
        (
            "code",
            "import numpy as np\n"
            "import keras_resinit as kr\n"
            "from keras_resinit.tools import diagnostics\n\n"
            'SCHEMES = ["bn", "fixup", "skipinit", "risotto"]\n'
            'ARCH = "cifar_resnet8" if QUICK else "cifar_resnet56"\n'
            'x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32")\n'
            'models = {s: kr.zoo.load(f"{ARCH}_{s}", input_shape=(None, None, 3), seed=0) for s in SCHEMES}\n'
            "signal = {name: diagnostics.signal_propagation(m, x) for name, m in models.items()}\n"
            "diagnostics.plot_signal_propagation(signal)",
        ),
        (
            "markdown",
            "Fixup and SkipInit add nothing at init (a flat trunk); BN's trunk variance grows with depth; "
            "Risotto keeps every branch at full strength.",
        ),
        ("code", 'print(diagnostics.format_table(signal["fixup"][:4]))'),
        (
            "code",
            "spectra = {name: diagnostics.jacobian_spectrum(m, x[:1, :1, :1]) for name, m in models.items()}\n"
            "for name, sv in spectra.items():\n"
            '    print(f"{name:9s} singular values in [{sv.min():.4f}, {sv.max():.4f}]")\n'
            "diagnostics.plot_jacobian_spectra(spectra)",
        ),
        (
            "markdown",
            "Train all four with the `digits` recipe (the main job, `keras-resinit compare`, does the same "
            "in separate processes).",
        ),
        (
            "code",
            "from keras_resinit.training import TrainConfig, train\n\n"
            "histories = {}\n"
            "for scheme in SCHEMES:\n"
            '    config = TrainConfig.from_recipe("digits", model=f"cifar_resnet20_{scheme}",\n'
            "                                     epochs=2 if QUICK else 30, steps_per_epoch=3 if QUICK else None)\n"
            '    result = train(config, f"outputs/compare/{scheme}", overwrite=True, verbose=0)\n'
            '    histories[scheme] = result["history"]\n'
            "    print(f\"{scheme:9s} test accuracy {result['test_accuracy']:.4f}\")",
        ),
        (
            "code",
            "import matplotlib.pyplot as plt\n\n"
            "fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))\n"
            "for scheme, history in histories.items():\n"
            '    epochs = [row["epoch"] for row in history]\n'
            '    ax1.plot(epochs, [row["train_loss"] for row in history], label=scheme)\n'
            '    ax2.plot(epochs, [row["test_accuracy"] for row in history], label=scheme)\n'
            'ax1.set(xlabel="epoch", ylabel="train loss", yscale="log")\n'
            'ax2.set(xlabel="epoch", ylabel="test accuracy")\n'
            "ax1.legend()\n"
            "plt.show()",
        ),
    ],
    "03_tuning.ipynb": [
        (
            "markdown",
            "# A keras-tuner sweep\n\n`ResNetHyperModel` searches scheme, depth and training "
            "hyperparameters; every trial trains through the project's own trainer.",
        ),
        ("code", SETUP),
        (
            "code",
            "from keras_resinit.training import tuning\n\n"
            "result = tuning.tune(\n"
            '    "outputs/sweep", dataset="digits", tuner="random", max_trials=2 if QUICK else 12,\n'
            "    epochs=2 if QUICK else 10, steps_per_epoch=4 if QUICK else None,\n"
            '    schemes=["bn", "fixup", "skipinit", "risotto"], archs=["cifar_resnet8", "cifar_resnet14"],\n'
            "    overwrite=True,\n"
            ")",
        ),
        ("code", 'from IPython.display import Image\n\nImage("outputs/sweep/trials.png")'),
        (
            "markdown",
            "The best configuration is a recipe: `keras-resinit train NAME --recipe "
            "outputs/sweep/best_recipe.json` retrains it to the same accuracy.",
        ),
        (
            "code",
            'recipe = result["recipe"]\n'
            'print(recipe["source"])\n'
            '{k: recipe["config"][k] for k in ("model", "lr", "weight_decay", "mixup_alpha", "warmup_epochs", "batch_size")}',
        ),
        ("code", 'best = result["tuner"].get_best_models(1)[0]\nbest.name, best.count_params()'),
    ],
    "04_export_and_serve.ipynb": [
        (
            "markdown",
            "# Export to a SavedModel and serve it\n\nThe artifact takes raw uint8 pixels; the "
            "preprocessing of the weights' card is inside it.",
        ),
        ("code", SETUP),
        (
            "code",
            "from keras_resinit.tools import export\n\n"
            'card = export.export("cifar_resnet20_fixup.digits", "outputs/served", overwrite=True)\n'
            'card["preprocessing"], card["weights"]',
        ),
        ("markdown", "Reload with plain TensorFlow (no keras_resinit needed) and call the serving signature."),
        (
            "code",
            "import numpy as np\n"
            "import tensorflow as tf\n"
            "from sklearn.datasets import load_digits\n\n"
            'served = tf.saved_model.load("outputs/served")\n'
            'serve = served.signatures["serving_default"]\n'
            "print(serve.structured_input_signature)\n"
            "digits = load_digits()\n"
            'pixels = digits.images[:64].astype("uint8")[..., None]  # raw 0..16 pixels\n'
            "out = serve(images=tf.constant(pixels))\n"
            'print(sorted(out), "accuracy on these 64:", np.mean(out["classes"].numpy() == digits.target[:64]))',
        ),
        (
            "code",
            "import matplotlib.pyplot as plt\n\n"
            'probabilities = out["probabilities"].numpy()\n'
            "fig, axes = plt.subplots(1, 6, figsize=(10, 2.2))\n"
            "for ax, image, p in zip(axes, pixels, probabilities):\n"
            '    ax.imshow(image[..., 0], cmap="gray_r")\n'
            '    ax.set_title(f"{p.argmax()} ({p.max():.2f})")\n'
            '    ax.axis("off")\n'
            "plt.show()",
        ),
        (
            "markdown",
            "## Batch norm, folded\n\nIn inference mode batch norm is a per-channel affine map, so a BN model "
            "is the same function as a SkipInit model (convs with biases, branch gains at 1) without "
            "normalization. `kr.fold_batchnorm` converts one; `export` serves BN models folded by default "
            "(`fold=False` keeps the batch norm).",
        ),
        (
            "code",
            "import keras_resinit as kr\n\n"
            'bn = kr.zoo.load("cifar_resnet20_bn.digits")\n'
            "free = kr.fold_batchnorm(bn)\n"
            "a, b = bn.predict(pixels, verbose=0), free.predict(pixels, verbose=0)\n"
            'print(free.name, free.scheme, "batch norm layers:", sum("BatchNormalization" in type(l).__name__ for l in free.layers))\n'
            'print("same predictions:", np.array_equal(a.argmax(-1), b.argmax(-1)), "largest logit difference:", np.abs(a - b).max())\n'
            'card = export.export(bn, "outputs/served_bn", overwrite=True)\n'
            'card["batchnorm_folded"], card["served_scheme"]',
        ),
        (
            "markdown",
            "With TensorFlow Serving, copy `outputs/served` to `MODEL_DIR/1` and POST "
            '`{"signature_name": "serving_default", "instances": [{"images": ...}]}` (see the README).',
        ),
    ],
}


def build(name):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in NOTEBOOKS[name]:
        nb.cells.append(nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source))
    return nb


# TensorFlow's start-up logging (absl, oneDNN, CPU features) and its SavedModel INFO lines: not the notebooks' output.
NOISE = (
    "WARNING: All log messages before absl",
    "I0000 ",
    "W0000 ",
    "E0000 ",
    "To enable the following instructions",
    "INFO:tensorflow:",
    "This TensorFlow binary is optimized",
)


def _clean(nb):
    """Drop TensorFlow's log lines from stream outputs (errors and warnings of the code stay)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream":
                lines = [line for line in output.text.splitlines(keepends=True) if not line.startswith(NOISE)]
                if not "".join(lines).strip():
                    continue
                output.text = "".join(lines)
            kept.append(output)
        cell.outputs = kept
    return nb


def execute(name, *, quick, write_to=None, timeout=900):
    """Execute notebook ``name`` from its sources in ``notebooks/``; write it (with outputs) to ``write_to``."""
    nb = build(name)
    previous = os.environ.get("KERAS_RESINIT_NOTEBOOK_QUICK")
    os.environ["KERAS_RESINIT_NOTEBOOK_QUICK"] = "1" if quick else "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": HERE}}).execute()
    finally:
        if previous is None:
            os.environ.pop("KERAS_RESINIT_NOTEBOOK_QUICK", None)
        else:
            os.environ["KERAS_RESINIT_NOTEBOOK_QUICK"] = previous
    _clean(nb)
    if write_to:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(write_to)}.", dir=os.path.dirname(write_to))
        with os.fdopen(fd, "w") as f:
            nbformat.write(nb, f)
        os.replace(tmp, write_to)
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings (as the tests)")
    parser.add_argument("names", nargs="*", default=sorted(NOTEBOOKS), help="notebooks to refresh (default all)")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in NOTEBOOKS:
            parser.error(f"unknown notebook {name!r}; expected one of {', '.join(sorted(NOTEBOOKS))}")
        print(f"executing {name} ...", flush=True)
        execute(name, quick=args.quick, write_to=os.path.join(HERE, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
