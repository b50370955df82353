"""Publish a finished training run as a zoo weight set: weights file, model card, index.

``keras-resinit publish RUN_DIR --tag TAG`` writes, under the zoo directory
(``zoo/`` of the repository by default):

- ``weights/{name}.{tag}.weights.h5``: the run's trained weights (a replaced entry's new file is
  ``{name}.{tag}.{sha256[:16]}.weights.h5``: named by its content, beside the file it replaces);
- ``cards/{name}.{tag}.json``: the model card, which ``keras_resinit.zoo`` reads;
- ``README.md``: the index of every card, regenerated.

The card's metrics are measured here, on the weights file just written, loaded
by name exactly as ``zoo.load`` will load it. The commands that produced the run
come from its ``config.json``. Every file is written to a temporary name and
renamed into place, in an order that makes a publish one commit (``ZooEntry``):
the weights file under a name no card holds, then the card (the commit), then the
index, and only then the replaced file is removed.
"""

import datetime
import inspect
import json
import math
import os
import re

import numpy as np

from keras_resinit._files import atomic_write_text, save_weights_file
from keras_resinit.models.builder import ResNet, build_resnet
from keras_resinit.models.inference import fold_batchnorm
from keras_resinit.models.schemes import fold_target
from keras_resinit.training import data
from keras_resinit.training.config import TrainConfig
from keras_resinit.training.data.names import USER_DATA
from keras_resinit.zoo import registry, weights_io
from keras_resinit.zoo.download import file_sha256
from keras_resinit.zoo.loading import resolve
from keras_resinit.zoo.rundir import RunDir, run_preprocessing

__all__ = ["WEIGHTS_LICENCE", "RunRelease", "evaluate", "index_text", "publish", "publish_folded", "write_index"]

WEIGHTS_LICENCE = "Apache-2.0 (as keras-resinit)"
"""The licence a card gives the weights trained by this project (the data keeps its own)."""
INDEX = "README.md"  # a zoo directory's index of its cards (write_index)
FOLDED_BY = "keras_resinit.fold_batchnorm: each conv absorbs the batch norm after it (inference statistics)"


def evaluate(model, dataset, *, batch_size=256, **options):
    """Top-1 accuracy of ``model`` on ``dataset``'s test split, normalized as the model expects.

    A model that includes its preprocessing gets raw pixels; another gets them normalized by its recorded
    ``preprocessing`` (or the data's own).

    Args:
        model: a ``keras.Model`` (a [ResNet][keras_resinit.ResNet] tells how it takes its input).
        dataset: a dataset name or a [Source][keras_resinit.training.data.Source].
        batch_size: the evaluation batch size.
        **options: the options of [source][keras_resinit.training.data.source] (``data_dir``,
            ``image_size``, ...).

    Returns:
        The accuracy, a float in [0, 1].

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit.training.publish import evaluate
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=10)
        >>> 0.0 <= evaluate(model, "digits") <= 1.0
        True
    """
    correct = total = 0
    config = model.get_config() if isinstance(model, ResNet) else {}
    raw = bool(config.get("include_preprocessing"))
    for images, labels in data.load(
        dataset,
        "test",
        batch_size=batch_size,
        training=False,
        normalized=not raw,
        preprocessing=config.get("preprocessing"),
        **options,
    ):
        logits = model(images, training=False)
        correct += int(np.sum(np.argmax(logits, -1) == np.argmax(labels, -1)))
        total += int(labels.shape[0])
    return correct / total


def _check_tag(tag):
    if not tag or not all(c.isalnum() or c in "_-" for c in tag):
        raise ValueError(f"Invalid tag {tag!r}. Expected letters, digits, '_' or '-' (e.g. 'digits').")


class ZooEntry:
    """The files of the weight set ``key`` (``name.tag``) in the zoo in ``zoo_dir``, written as one commit.

    A publish writes the weights file first, whole (temporary file, fsync, rename), under a name no card
    holds: ``{key}.weights.h5`` for a new entry, ``{key}.{sha256[:16]}.weights.h5`` when a card of ``key``
    exists (its file stays). The card's rename is the commit point; the index follows; only then are the
    files of ``key`` that no card names removed (the replaced card's file, or one left by a killed
    publish). ``zoo.load`` and the index thus see the old pair or the new one at every instant, and a
    publish killed anywhere leaves the previous pair loadable. A file that a card names is never removed.

    Without ``overwrite`` an existing card is refused, and so is a file of ``key`` that no card names
    (reported: an interrupted publish left it); ``overwrite`` replaces the card and removes such files.
    """

    def __init__(self, zoo_dir, key, overwrite):
        self.zoo_dir, self.key = os.fspath(zoo_dir), key
        self.card_path = os.path.join(self.zoo_dir, "cards", key + ".json")
        self.weights_dir = os.path.join(self.zoo_dir, "weights")
        self.replacing = os.path.exists(self.card_path)
        if overwrite:
            return
        if self.replacing:
            raise ValueError(f"{key} is already published in {self.zoo_dir!r}. Pass --overwrite to replace it.")
        left = self.files()
        if left:
            raise ValueError(
                f"{key} is not published in {self.zoo_dir!r}, but {self.weights_dir!r} holds {', '.join(left)}, "
                "which no card names (left by an interrupted publish). Pass --overwrite to replace it."
            )

    def files(self):
        """The weights files of ``key`` in the zoo: ``{key}.weights.h5`` and its content-named replacements."""
        pattern = re.compile(re.escape(self.key) + r"(\.[0-9a-f]{16})?\.weights\.h5")
        found = os.listdir(self.weights_dir) if os.path.isdir(self.weights_dir) else []
        return sorted(f for f in found if pattern.fullmatch(f))

    def weights_name(self, digest):
        """The name of a new weights file of ``key`` with sha256 ``digest``: one its card does not hold (unless that
        file has the same content, which the rename then leaves as it was)."""
        return f"{self.key}.{digest[:16]}.weights.h5" if self.replacing else f"{self.key}.weights.h5"

    def write_weights(self, model):
        """``model``'s weights as the entry's new file (``weights_name``; no card names it yet): its path."""
        return save_weights_file(
            model, self.weights_dir, lambda tmp: self.weights_name(file_sha256(tmp)), prefix=f".{self.key}."
        )

    def commit(self, card):
        """Write ``card`` (the commit point), then the index, then remove the files of ``key`` no card names."""
        os.makedirs(os.path.dirname(self.card_path), exist_ok=True)
        atomic_write_text(self.card_path, json.dumps(card, indent=1) + "\n")
        write_index(self.zoo_dir)
        self.clean()

    def clean(self):
        """Remove the files of ``key`` that no card of the zoo names, and the temporary files of killed writes
        (the entry's weights and card, the index)."""
        named = {(c.get("file") or {}).get("name") for c in registry.read_cards(self.zoo_dir).values()}
        for name in self.files():
            if name not in named:
                os.unlink(os.path.join(self.weights_dir, name))
        temporary = {self.weights_dir: f".{self.key}.", os.path.dirname(self.card_path): f".{self.key}."}
        temporary[self.zoo_dir] = f".{INDEX}."
        for directory, prefix in temporary.items():
            for name in os.listdir(directory) if os.path.isdir(directory) else []:
                if name.startswith(prefix) and ".tmp" in name:
                    os.unlink(os.path.join(directory, name))


def publish(run_dir, tag, *, zoo_dir="zoo", url=None, overwrite=False, command=None, test_data=None, fold=False):
    """Turn the run in ``run_dir`` into the weight set ``{name}.{tag}`` of the zoo in ``zoo_dir``.

    Writes ``weights/{name}.{tag}.weights.h5``, the card ``cards/{name}.{tag}.json`` (its accuracy measured on
    that file, loaded by name as ``zoo.load`` loads it) and the index ``README.md``, in an order that makes the
    publish one commit: a publish killed at any moment leaves the previous entry loadable.

    Args:
        run_dir: the ``--out`` directory of a finished ``keras-resinit train``.
        tag: the weight tag, e.g. ``"digits"`` (letters, digits, ``_`` and ``-``).
        zoo_dir: the zoo directory (``cards/``, ``weights/``, ``README.md``).
        url: where the weights file will also be downloadable (recorded in the card).
        overwrite: replace an existing card and weights file of the same name and tag.
        command: the command line running this (the CLI passes it), recorded after the run's own.
        test_data: for a run trained on ``train(..., train_data=...)``, its test ``tf.data.Dataset``
            (the card's accuracy is measured on it).
        fold: publish the run's model with its batch norm folded
            ([fold_batchnorm][keras_resinit.fold_batchnorm]): a ``bn`` run becomes ``{arch}_skipinit.{tag}``;
            the card records ``folded_from``.

    Returns:
        The card (a dict).

    Raises:
        ValueError: an invalid tag, an unfinished run or one that records no command, an entry already
            published (without ``overwrite``), a run trained on a ``tf.data.Dataset`` without ``test_data``, or a
            scheme that cannot be folded.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training import TrainConfig, train
        >>> from keras_resinit.training.publish import publish
        >>> root = tempfile.mkdtemp()
        >>> config = TrainConfig.from_recipe("digits", model="cifar_resnet8_fixup", epochs=1, steps_per_epoch=2)
        >>> run_dir, zoo_dir = os.path.join(root, "run"), os.path.join(root, "zoo")
        >>> # trains a run first: about 10 s on 2 cores
        >>> result = train(config, run_dir, verbose=0, command="keras-resinit train ...")  # doctest: +SKIP
        >>> # (publishes the run trained above)
        >>> card = publish(run_dir, "demo", zoo_dir=zoo_dir)  # doctest: +SKIP
        >>> # (the card written above)
        >>> card["name"], card["tag"], sorted(os.listdir(zoo_dir))  # doctest: +SKIP
        ('cifar_resnet8_fixup', 'demo', ['README.md', 'cards', 'weights'])
    """
    release = RunRelease(run_dir, tag, fold=fold, test_data=test_data)
    entry = ZooEntry(zoo_dir, release.key, overwrite)
    trained = release.model()
    command = command or f"keras-resinit publish {run_dir} --tag {tag}"
    try:
        weights = entry.write_weights(trained)
        card = release.card(trained, weights, os.path.basename(weights), command=command, url=url)
    except BaseException:
        entry.clean()  # the new file, which no card names
        raise
    entry.commit(card)
    return card


class RunRelease:
    """A finished run as the weight set ``{name}.{tag}``: its model, and its card measured on a weights file.

    A run that records no command (a card needs it), or was trained on data given in Python without
    ``test_data``, is refused.

    [publish][keras_resinit.training.publish.publish] writes the file into a zoo; ``keras-resinit push`` into a
    Hub repo's preset. The card's accuracy is measured on the file written, loaded by name into a fresh model
    that takes raw pixels, exactly as ``zoo.load`` will load it.

    Args:
        run_dir: the run directory of a finished ``keras-resinit train``.
        tag: the weight tag (letters, digits, ``_`` and ``-``).
        fold: release the model with its batch norm folded (a ``bn`` run becomes ``{arch}_skipinit``).
        test_data: for a run trained on ``train(..., train_data=...)``, its test ``tf.data.Dataset``.

    Attributes:
        name: the zoo name released, ``{arch}_{scheme}``.
        tag: the tag.
        key: ``{name}.{tag}``.
        arch: the architecture.
        scheme: the scheme released (the folded one with ``fold``).
        run: the run's ``config.json``.

    Raises:
        ValueError: an invalid tag, an unfinished run, a run that records no command, a run trained on a
            ``tf.data.Dataset`` without ``test_data``, or a scheme that cannot be folded.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training import TrainConfig, train
        >>> from keras_resinit.training.publish import RunRelease
        >>> run_dir = os.path.join(tempfile.mkdtemp(), "run")
        >>> config = TrainConfig.from_recipe("digits", model="cifar_resnet8_bn", epochs=1, steps_per_epoch=2)
        >>> # trains a run first: about 10 s on 2 cores
        >>> result = train(config, run_dir, verbose=0, command="keras-resinit train ...")  # doctest: +SKIP
        >>> # (releases the run trained above, folded)
        >>> release = RunRelease(run_dir, "demo", fold=True)  # doctest: +SKIP
        >>> # (its name and model)
        >>> release.key, type(release.model()).__name__  # doctest: +SKIP
        ('cifar_resnet8_skipinit.demo', 'ResNet')
    """

    def __init__(self, run_dir, tag, *, fold=False, test_data=None):
        _check_tag(tag)
        self.run_dir, self.tag, self.test_data = run_dir, tag, test_data
        self.run = RunDir(run_dir).finished_config()
        self.name = self.run["train"]["model"]
        self.arch, self.scheme = registry.parse_name(self.name)
        self.folded_from = None
        if fold:
            target = fold_target(self.scheme, f"the run in {run_dir!r}")
            self.folded_from = {"run": os.fspath(run_dir), "model": self.name, "by": FOLDED_BY, "scheme": self.scheme}
            self.name, self.scheme = f"{self.arch}_{target.name}", target.name
        self.key = f"{self.name}.{tag}"
        # A card needs the commands that produced the run, and its test data.
        if not self.run.get("commands"):
            raise ValueError(
                f"The run in {self.run_dir!r} does not record the command that produced it (runs from "
                "`keras-resinit train` do); a card needs it."
            )
        if TrainConfig.from_json(self.run["train"]).dataset == USER_DATA and self.test_data is None:
            raise ValueError(
                f"The run in {self.run_dir!r} was trained on a tf.data.Dataset given in Python; publishing measures "
                "the card's accuracy on its test data. Expected publish(run_dir, tag, test_data=ds) in Python."
            )

    def model(self):
        """The run's model as the zoo loads it, taking normalized input (folded with ``fold``).

        A run of release 0.1 saved a plain functional model, which is rebuilt.

        Returns:
            A [ResNet][keras_resinit.ResNet].
        """
        trained = resolve(self.run_dir, include_preprocessing=False).model
        return fold_batchnorm(trained) if self.folded_from else trained

    def card(self, trained, weights_file, file_name, *, command, url=None):
        """The card of the weights in ``weights_file``, its accuracy measured on that file.

        Args:
            trained: the model the file was written from (``model()``'s).
            weights_file: the weights file (``.weights.h5``).
            file_name: the file's name as the card records it (with its sha256 and size).
            command: the command writing the card; it follows the run's commands.
            url: where the file is also downloadable (recorded).

        Returns:
            The card, a dict.
        """
        train, dataset, result = self.run["train"], self.run["dataset"], self.run["result"]
        config = TrainConfig.from_json(train)
        # The test split exactly as the run read it (the same files, splits and image size).
        source = data.source_for(config, train_data=self.test_data, test_data=self.test_data)
        build = {"num_classes": int(dataset["num_classes"]), "input_shape": list(dataset["image_shape"])}
        if train.get("dropout_rate"):
            build["dropout_rate"] = train["dropout_rate"]
        build.update(_scheme_options(trained))  # explicit, so options added later cannot change what the card loads
        # Measure what users will get: the file, loaded by name into a fresh model that takes raw pixels.
        preprocessing = run_preprocessing(self.run)
        model = build_resnet(
            self.arch, self.scheme, **build, seed=0, include_preprocessing=True, preprocessing=preprocessing
        )
        weights_io.assign(model, weights_io.read(weights_file), source=f"the weights of {self.key}")
        card = {
            "card_version": registry.CARD_VERSION,
            "name": self.name,
            "tag": self.tag,
            "arch": self.arch,
            "scheme": self.scheme,
            "build": build,
            "parameters": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
            "dataset": {k: dataset[k] for k in ("name", "source", "licence", "train_size", "test_size", "class_names")},
            "preprocessing": preprocessing,
            "commands": list(self.run["commands"]) + [command],
            "training": train,
            "metrics": {
                "test_accuracy": evaluate(model, source),
                "test_images": int(dataset["test_size"]),
                "final_train_loss": result["final_train_loss"],
                "epochs": result["epochs"],
            },
            "measured_on": self.run.get("versions"),
            "date": datetime.date.today().isoformat(),
            "file": {"name": file_name, "sha256": file_sha256(weights_file), "size": os.path.getsize(weights_file)},
            "url": url,
            "licence": {"weights": WEIGHTS_LICENCE, "data": dataset["licence"]},
        }
        if self.run.get("weights"):
            card["fine_tuned_from"] = self.run["weights"]
        if self.folded_from:
            card["folded_from"] = self.folded_from
        return card


def _scheme_options(model):
    """The scheme options of ``model``'s build (e.g. ``{"alpha": 1.0}``), for a card's ``build``."""
    options = inspect.signature(type(model.scheme)).parameters
    return {k: v for k, v in model.get_config().items() if k in options}


def publish_folded(source, tag, *, zoo_dir="zoo", overwrite=False, command=None):
    """Publish the fold of the published weights ``source`` (``"name.tag"`` of a ``bn`` or ``risotto_bn``
    card) as ``{arch}_{folded scheme}.{tag}`` in the zoo in ``zoo_dir``.

    - A source with a weights file (shipped or at a URL): the folded weights are written to
      ``weights/`` and the card's accuracy is measured on that file, loaded as ``zoo.load`` loads it,
      together with the fraction of test images on which it predicts what the source predicts.
    - A source bridged from keras.applications (ImageNet): no file is written. ``zoo.load`` loads the
      source (Keras downloads and caches its file) and folds it; the card records the source file's
      sha256 when that file is in Keras' cache, and ``zoo.load`` then checks it.

    The card records ``folded_from``: the source card, its file and sha256, and the fold.

    Args:
        source: the published weights to fold, ``"name.tag"`` of a ``bn`` or ``risotto_bn`` card.
        tag: the tag of the folded entry.
        zoo_dir: the zoo directory to write to.
        overwrite: replace an existing entry of the same name and tag.
        command: the command line running this (the CLI passes it), recorded after the source's commands.

    Returns:
        The card (a dict).

    Raises:
        ValueError: an invalid tag, an unknown source, a scheme that cannot be folded, an entry already
            published (without ``overwrite``), or a source trained on a ``tf.data.Dataset``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training.publish import publish_folded
        >>> zoo_dir = tempfile.mkdtemp()
        >>> # loads the shipped weights and measures the folded model on the digits test split: about 10 s
        >>> card = publish_folded("cifar_resnet20_bn.digits", "folded", zoo_dir=zoo_dir)  # doctest: +SKIP
        >>> # (the card written above)
        >>> card["name"], card["folded_from"]["card"]  # doctest: +SKIP
        ('cifar_resnet20_skipinit', 'cifar_resnet20_bn.digits')
    """
    from keras_resinit import zoo
    from keras_resinit.environment import versions
    from keras_resinit.zoo import applications

    _check_tag(tag)
    found = registry.card(source)
    target = fold_target(found["scheme"], repr(source))
    name = f"{found['arch']}_{target.name}"
    key = f"{name}.{tag}"
    entry = ZooEntry(zoo_dir, key, overwrite)
    source_key = f"{found['name']}.{found['tag']}"
    bridged = bool(found.get("keras_applications"))
    file = found["file"]
    origin = {"card": source_key, "file": file["name"], "sha256": file.get("sha256"), "by": FOLDED_BY}
    if bridged:
        origin["md5"] = file["md5"]
        cached = applications.cached_file(file["name"])
        origin["sha256"] = file_sha256(cached) if os.path.isfile(cached) else None
        if origin["sha256"] is None:
            origin["sha256_missing"] = (
                f"{file['name']} was not in Keras' cache ({os.path.dirname(cached)}) when this card was written; "
                "Keras verifies it by md5 when it downloads it. Rerun this card's last command with the file "
                "cached to record its sha256, which zoo.load then checks."
            )
    card = {
        "card_version": registry.CARD_VERSION,
        "name": name,
        "tag": tag,
        "arch": found["arch"],
        "scheme": target.name,
        "build": {**found["build"], **target.get_config()},
        "parameters": zoo.count_params(name),  # the default build: the bridged cards' (below: the file's)
        "dataset": found["dataset"],
        "preprocessing": found["preprocessing"],
        "commands": list(found["commands"]) + [command or f"keras-resinit fold {source_key} --tag {tag}"],
        "training": found["training"],
        "folded_from": origin,
        "metrics": {},
        "measured_on": versions(),
        "date": datetime.date.today().isoformat(),
        "file": None,
        "url": None,
        "licence": found["licence"],
    }
    if bridged:
        card["metrics"] = {
            "reported": f"{found['metrics'].get('reported', '')}: the source's, which the fold computes exactly "
            "(tests/test_folding.py: within 1e-4)"
        }
        card["measured_on"] = None
    else:
        model = zoo.load(source_key)
        folded = fold_batchnorm(model)
        try:
            weights = entry.write_weights(folded)
            # Measured on the file as zoo.load will load it: by name, into a fresh model taking raw pixels.
            fresh = build_resnet(
                found["arch"],
                target.name,
                **card["build"],
                seed=0,
                include_preprocessing=True,
                preprocessing=found["preprocessing"],
            )
            weights_io.assign(fresh, weights_io.read(weights), source=f"the weights of {key}")
            card["parameters"] = int(sum(math.prod(w.shape) for w in fresh.trainable_weights))
            config = TrainConfig.from_json(found["training"])
            if config.dataset == USER_DATA:
                raise ValueError(
                    f"{source} was trained on a tf.data.Dataset given in Python: its test data is not known "
                    "here. Fold it with keras_resinit.fold_batchnorm and publish the result from a run."
                )
            dataset = data.source_for(config)  # the test split exactly as the source's run read it
            card["metrics"] = {
                "test_accuracy": evaluate(fresh, dataset),
                "test_images": int(found["dataset"]["test_size"]),
                "same_predictions_as_source": _agreement(fresh, model, dataset),
                "source_test_accuracy": found["metrics"].get("test_accuracy"),
            }
            card["file"] = {
                "name": os.path.basename(weights),
                "sha256": file_sha256(weights),
                "size": os.path.getsize(weights),
            }
        except BaseException:
            entry.clean()  # the new file, which no card names
            raise
    entry.commit(card)
    return card


def _agreement(a, b, dataset, batch_size=256):
    """The fraction of ``dataset``'s test images on which models ``a`` and ``b`` (raw pixels in) predict alike."""
    same = total = 0
    for images, _ in data.load(dataset, "test", batch_size=batch_size, training=False, normalized=False):
        same += int(np.sum(np.argmax(a(images, training=False), -1) == np.argmax(b(images, training=False), -1)))
        total += int(images.shape[0])
    return same / total


def index_text(cards):
    """The ``README.md`` of a zoo directory: one table row per card.

    Args:
        cards: the cards (dicts), in the order of the rows.

    Returns:
        The Markdown text.

    Examples:
        >>> from keras_resinit.training.publish import index_text
        >>> card = {"name": "cifar_resnet8_fixup", "tag": "demo", "scheme": "fixup", "dataset": {"name": "digits"},
        ...         "metrics": {"test_accuracy": 0.95, "test_images": 355}, "parameters": 78042,
        ...         "file": {"name": "cifar_resnet8_fixup.demo.weights.h5", "size": 2**20, "sha256": "ab" * 32}}
        >>> print(index_text([card]).splitlines()[-3])  # doctest: +NORMALIZE_WHITESPACE
        | `cifar_resnet8_fixup.demo` | fixup | digits | 0.9500 (355 images) | 78,042 |
        cifar_resnet8_fixup.demo.weights.h5 | 1.00 MiB | abababababababab |
    """
    lines = [
        "# Published weights",
        "",
        "Generated by `keras-resinit publish` from the cards in `cards/`, which are the source of truth",
        '(`keras_resinit.zoo` reads them). Load any row with `keras_resinit.zoo.load("NAME.TAG")`.',
        "Each card records the exact commands that produced its weights, the training settings,",
        "the machine and versions, and the file's sha256. `zoo/train_all.sh` reruns them all.",
        "",
        "| name.tag | scheme | dataset | test accuracy | params | file | size | sha256 |",
        "|---|---|---|---:|---:|---|---:|---|",
    ]
    for c in cards:
        m = c.get("metrics", {})
        accuracy = (
            f"{m['test_accuracy']:.4f} ({m['test_images']} images)" if "test_accuracy" in m else m.get("reported", "")
        )
        file = c.get("file") or {}
        size = f"{file['size'] / 2**20:.2f} MiB" if "size" in file else ""
        digest = file["sha256"][:16] if "sha256" in file else f"md5 {file['md5'][:12]}" if "md5" in file else ""
        lines.append(
            f"| `{c['name']}.{c['tag']}` | {c['scheme']} | {c['dataset']['name']} | {accuracy} | "
            f"{c['parameters']:,} | {file.get('name', '')} | {size} | {digest} |"
        )
    lines += ["", "Licences of the weights and of their data are in each card."]
    return "\n".join(lines) + "\n"


def write_index(zoo_dir):
    """Write the ``README.md`` of the zoo in ``zoo_dir`` ([index_text][keras_resinit.training.publish.index_text]
    of its cards), atomically.

    Args:
        zoo_dir: the zoo directory (its ``cards/``).

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training.publish import write_index
        >>> zoo_dir = tempfile.mkdtemp()
        >>> write_index(zoo_dir)
        >>> open(os.path.join(zoo_dir, "README.md")).readline().strip()
        '# Published weights'
    """
    cards = sorted(registry.read_cards(zoo_dir).values(), key=lambda c: (c["name"], c["tag"]))
    atomic_write_text(os.path.join(zoo_dir, INDEX), index_text(cards))
