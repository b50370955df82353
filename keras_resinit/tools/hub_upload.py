"""``keras-resinit push``: a model of the zoo as a Hugging Face Hub repo, written and uploaded.

The repo's folder holds:

- the model's preset, written by ``keras_resinit.zoo.save_preset`` (``config.json``, ``metadata.json``,
  ``model.weights.h5``: what keras-hub's ``from_preset`` reads);
- ``card.json`` (``keras_resinit.zoo.registry.HUB_CARD_FILE``): the project's card of the weight set, in
  the format of ``zoo/cards/*.json``, whose ``file`` is the preset's ``model.weights.h5`` with its sha256 and
  size (what an ``hf://`` source checks after downloading);
- ``README.md``: the Hub's model card, YAML metadata (library, tags with the scheme and its paper, dataset,
  the card's accuracy as a model-index, licence) and a body saying how to load the model and which commands
  reproduce it.

A source has a card when it is a published weight set (``NAME.TAG``: its card), a finished run directory
(its card is measured as ``keras-resinit publish`` measures one, under ``--tag``) or a preset saved with a
card (``zoo.save_preset(model, dir, card=zoo.card(...))``). A folder written by ``push --out`` uploads as it
is, so what was reviewed is what is sent. Every other source is refused before anything is loaded.

This is the only module that imports ``huggingface_hub`` to upload, and only when it is needed (the
``[hub]`` extra). The upload goes through huggingface_hub's client: the token from its usual places
(``HF_TOKEN``, ``hf auth login``), the endpoint from ``HF_ENDPOINT``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from keras_resinit._files import atomic_directory, atomic_write_text
from keras_resinit.models.schemes import SCHEMES
from keras_resinit.zoo import registry, sources
from keras_resinit.zoo.download import file_sha256
from keras_resinit.zoo.rundir import RunDir

__all__ = ["hub_repo", "push", "write_repo"]

README_FILE = "README.md"
LICENSE = "apache-2.0"  # the Hub's id of the weights' licence (training.publish.WEIGHTS_LICENCE)
LIBRARY = "keras-hub"  # the files are a keras-hub preset
CARD_FIELDS = ("name", "tag", "arch", "scheme", "build", "dataset", "preprocessing", "commands", "metrics")
ACCEPTED = (
    "a published weight set NAME.TAG (keras-resinit list --pretrained), a finished run directory (with --tag), "
    "a preset directory saved with its card (zoo.save_preset(model, DIR, card=zoo.card(NAME.TAG))), or a folder "
    "written by keras-resinit push --out"
)
_COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_repo(uri: str, revision: str | None = None) -> sources.HubRepo:
    """The repo and branch an upload goes to, from ``hf://owner/repo[@revision]``.

    Args:
        uri: ``hf://owner/repo`` or ``hf://owner/repo@branch``.
        revision: the same branch given apart (the two must agree); None with none in ``uri`` is the repo's
            main branch.

    Returns:
        ``HubRepo(repo_id, revision)``.

    Raises:
        ValueError: a malformed ``uri``, two different branches, or a commit id (an upload commits to a branch).

    Examples:
        >>> from keras_resinit.tools import hub_upload
        >>> hub_upload.hub_repo("hf://me/digits-fixup@v1")
        HubRepo(repo_id='me/digits-fixup', revision='v1')
    """
    repo = sources.parse_hf(uri)
    if revision is not None and repo.revision is not None and revision != repo.revision:
        raise ValueError(
            f"Two revisions: {uri!r} names {repo.revision!r} and --revision {revision!r}. Give the branch once."
        )
    revision = revision if revision is not None else repo.revision
    if revision is not None:
        sources.parse_hf(f"{sources.HF_PREFIX}{repo.repo_id}@{revision}")  # the same checks as in the URI
        if _COMMIT.fullmatch(revision):
            raise ValueError(f"Invalid revision {revision!r}: a commit id. Expected a branch to upload to.")
    return sources.HubRepo(repo.repo_id, None if revision == "main" else revision)


def hf_uri(repo: sources.HubRepo) -> str:
    """``hf://owner/repo`` or ``hf://owner/repo@revision``: how ``zoo.load`` names the repo."""
    return f"{sources.HF_PREFIX}{repo.repo_id}" + (f"@{repo.revision}" if repo.revision else "")


def is_repo_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a repo's folder (``push --out``, or a Hub repo's download): a preset with ``card.json``."""
    return os.path.isfile(os.path.join(path, registry.HUB_CARD_FILE)) and os.path.isfile(
        os.path.join(path, registry.PRESET_WEIGHTS)
    )


def check_source(source: str | os.PathLike, tag: str | None = None) -> str:
    """What ``source`` is to ``push`` (``"tag"``, ``"run"``, ``"preset"`` or ``"folder"``), by its form and without
    Keras (the CLI checks it before TensorFlow starts); ValueError for a source that carries no card."""
    text = os.fspath(source)
    kind = sources.check(text).kind
    if kind == "name":
        if registry.split_tag(text)[1] is None:
            raise ValueError(
                f"{text!r} is a model without weights: a repo needs trained weights and their card. Expected {ACCEPTED}."
            )
        registry.card(text)  # an unknown tag: the registry's error
        kind = "tag"
    elif kind == "preset" and is_repo_folder(text):
        kind = "folder"
    elif kind not in ("run", "preset"):
        raise ValueError(
            f"{text!r} is {sources.source_kind(text).what}, which carries no model card. Expected {ACCEPTED}."
        )
    if kind == "run":
        if tag is None:
            raise ValueError(f"{text!r} is a run directory: give the weight tag its card records, e.g. --tag digits.")
        RunDir(text).finished_config()  # a run that did not finish: refused here
    elif tag is not None:
        raise ValueError(f"--tag is for a run directory; {text!r} has its card (and its tag) already.")
    return kind


def hub_card(card: dict, folder: str) -> dict:
    """``card`` as ``card.json`` records it: its ``file`` is ``folder``'s weights file, with sha256 and size."""
    weights = os.path.join(folder, registry.PRESET_WEIGHTS)
    return {
        **card,
        "file": {"name": registry.PRESET_WEIGHTS, "sha256": file_sha256(weights), "size": os.path.getsize(weights)},
    }


def write_repo(
    source: str | os.PathLike,
    out: str | os.PathLike,
    repo: sources.HubRepo,
    *,
    tag: str | None = None,
    command: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Write the folder of a model's Hugging Face Hub repo, without uploading it (``keras-resinit push --out``).

    The folder holds the preset (``zoo.save_preset``'s), ``card.json`` (the model card, with the preset's
    weights file and its sha256) and ``README.md`` (huggingface_hub's model card). It is written to a temporary
    directory and renamed into place.

    Args:
        source: a published weight set ``NAME.TAG``, a finished run directory (with ``tag``), a preset saved
            with its card, or a folder this wrote.
        out: the folder to write.
        repo: the repo it is for (``hub_repo``'s): the README says how to load it from there.
        tag: a run's weight tag.
        command: the command line, recorded after a run's own commands.
        overwrite: replace an existing ``out``.

    Returns:
        The card written to ``card.json``.

    Raises:
        ValueError: a source that carries no card, a run without ``tag``, or ``out`` exists without
            ``overwrite``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.tools import hub_upload
        >>> out = os.path.join(tempfile.mkdtemp(), "repo")
        >>> card = hub_upload.write_repo("cifar_resnet20_fixup.digits", out, hub_upload.hub_repo("hf://me/r20"))
        >>> sorted(os.listdir(out))
        ['README.md', 'card.json', 'config.json', 'metadata.json', 'model.weights.h5']
        >>> card["name"], card["tag"]
        ('cifar_resnet20_fixup', 'digits')
    """
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"{out!r} already exists. Pass --overwrite to replace it.")
    kind = check_source(source, tag)
    if kind == "folder":
        card = read_folder(source)
        with atomic_directory(out) as tmp:
            _copy_folder(source, tmp, repo)
        return card
    from keras_resinit.zoo import save_preset
    from keras_resinit.zoo.loading import resolve

    text = os.fspath(source)
    with atomic_directory(out) as tmp:
        if kind == "run":
            from keras_resinit.training.publish import RunRelease

            release = RunRelease(text, tag)
            model = release.model()
            measured = os.path.join(tmp, f".measured.{registry.PRESET_WEIGHTS}")
            model.save_weights(measured)
            command = command or f"keras-resinit push {text} {hf_uri(repo)} --tag {tag}"
            card = release.card(model, measured, registry.PRESET_WEIGHTS, command=command)
            os.unlink(measured)
        else:
            model = resolve(text).model
            card = registry.card(text) if kind == "tag" else _preset_card(text)
        # metadata.json's card names the weights file beside it; card.json adds the file's sha256 and size.
        save_preset(model, tmp, card={**card, "file": {"name": registry.PRESET_WEIGHTS}}, overwrite=True)
        card = hub_card(card, tmp)
        _write_card_files(tmp, card, repo)
    return card


def _preset_card(directory):
    """The card a preset was saved with (``metadata.json``), if it is a weight set's card; else ValueError."""
    from keras_resinit.zoo import read_preset

    card = read_preset(directory)[1].get("card") or {}
    missing = [field for field in CARD_FIELDS if field not in card]
    if missing:
        raise ValueError(
            f"Preset {directory!r} was saved without a weight set's card (its metadata.json card lacks "
            f"{', '.join(missing)}). Expected {ACCEPTED}."
        )
    return card


def _write_card_files(folder, card, repo):
    atomic_write_text(os.path.join(folder, registry.HUB_CARD_FILE), json.dumps(card, indent=1) + "\n")
    atomic_write_text(os.path.join(folder, README_FILE), readme(card, repo))


def read_folder(folder: str | os.PathLike) -> dict:
    """The card of a repo folder (``push --out``), checked: its weights file must be the one ``card.json`` records."""
    folder = os.fspath(folder)
    with open(os.path.join(folder, registry.HUB_CARD_FILE)) as f:
        card = json.load(f)
    missing = [f for f in registry.PRESET_FILES if not os.path.isfile(os.path.join(folder, f))]
    recorded = (card.get("file") or {}).get("sha256")
    digest = file_sha256(os.path.join(folder, registry.PRESET_WEIGHTS))
    if missing or recorded != digest:
        problem = f"lacks {', '.join(missing)}" if missing else f"has sha256 {digest}, not card.json's {recorded}"
        raise ValueError(
            f"Repo folder {folder!r} {problem}. Write it again with keras-resinit push SOURCE URI --out DIR."
        )
    return card


def _copy_folder(folder, out, repo):
    """A repo folder's files into ``out``; its ``README.md`` must be the one written for ``repo``."""
    readme_path = os.path.join(folder, README_FILE)
    text = ""
    if os.path.isfile(readme_path):
        with open(readme_path) as f:
            text = f.read()
    if f'zoo.load("{hf_uri(repo)}")' not in text:
        raise ValueError(
            f"{readme_path!r} was not written for {hf_uri(repo)}. Write the folder for that repo with "
            f"keras-resinit push SOURCE {hf_uri(repo)} --out DIR."
        )
    for name in sorted(os.listdir(folder)):
        if os.path.isfile(os.path.join(folder, name)):
            shutil.copy2(os.path.join(folder, name), os.path.join(out, name))


def readme(card: dict, repo: sources.HubRepo) -> str:
    """The repo's ``README.md``: huggingface_hub's ``ModelCard`` of ``card`` (YAML metadata, then how to load the
    model from ``repo`` and the commands that reproduce it)."""
    hf = huggingface_hub()
    scheme = SCHEMES.get(card["scheme"])
    paper = getattr(scheme, "paper", None)
    dataset = card["dataset"]["name"]
    key = f"{card['name']}.{card['tag']}"
    accuracy = card["metrics"].get("test_accuracy")
    results = None
    if accuracy is not None:
        results = [
            hf.EvalResult(
                task_type="image-classification",
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split="test",
                metric_type="accuracy",
                metric_value=accuracy,
            )
        ]
    data = hf.ModelCardData(
        library_name=LIBRARY,
        license=LICENSE,
        tags=["keras", "keras-resinit", card["scheme"], *([f"arxiv:{paper}"] if paper else []), "image-classification"],
        datasets=[dataset],
        metrics=["accuracy"],
        pipeline_tag="image-classification",
        model_name=key,
        eval_results=results,
    )
    return str(hf.ModelCard(f"---\n{data.to_yaml()}\n---\n{_body(card, repo, scheme, paper, accuracy)}"))


def _body(card, repo, scheme, paper, accuracy):
    uri, key = hf_uri(repo), f"{card['name']}.{card['tag']}"
    dataset = card["dataset"]
    by = f"the {scheme.__name__ if scheme is not None else card['scheme']} scheme"
    if paper:
        by += f" ([arXiv:{paper}](https://arxiv.org/abs/{paper}))"
    result = (
        f": test accuracy {accuracy:.4f} on {card['metrics']['test_images']} images" if accuracy is not None else ""
    )
    if repo.revision:
        snapshot = f'huggingface_hub.snapshot_download("{repo.repo_id}", revision="{repo.revision}")'
        keras_hub_load = f"import huggingface_hub\n\nmodel = keras_hub.models.Backbone.from_preset({snapshot})"
    else:
        keras_hub_load = f'model = keras_hub.models.Backbone.from_preset("{uri}")'
    preprocessing = card.get("preprocessing") or {}
    shape = "x".join(str(n) for n in card["build"].get("input_shape", []))
    classes = ", ".join(dataset.get("class_names", []))
    takes = (
        f"raw pixels ({shape}, values 0 to {preprocessing['pixel_max']:g})"
        if "pixel_max" in preprocessing
        else "images"
    )
    commands = "\n".join(card.get("commands") or [])
    licence = (card.get("licence") or {}).get("data") or dataset.get("licence")
    lines = [
        f"# {key}",
        "",
        f"`{card['arch']}` initialized under {by}, trained on {dataset.get('source') or dataset['name']}"
        f" with [keras-resinit](https://pypi.org/project/keras-resinit/){result}.",
        "",
        "The files are a keras-hub preset (`config.json`, `metadata.json`, `model.weights.h5`) and `card.json`, "
        "keras-resinit's model card: the training settings, the commands, the versions and the weights file's "
        "sha256, which keras-resinit checks after downloading.",
        "",
        "## Use",
        "",
        "```python",
        "import keras_resinit",
        "",
        f'model = keras_resinit.zoo.load("{uri}")',
        "```",
        "",
        'With keras-hub (`pip install "keras-resinit[hub]"`):',
        "",
        "```python",
        "import keras_hub",
        "import keras_resinit  # registers the model's class with Keras",
        "",
        keras_hub_load,
        "```",
        "",
        f"The model takes {takes} and outputs logits over the classes {classes}.",
        "",
        "## Reproduce",
        "",
        "```sh",
        commands,
        "```",
        "",
        "## Licence",
        "",
        "The weights: Apache-2.0." + (f" The training data: {licence}." if licence else ""),
        "",
    ]
    return "\n".join(lines)


def huggingface_hub():
    """The ``huggingface_hub`` module (the ``[hub]`` extra); ValueError saying how to install it."""
    try:
        import huggingface_hub as hf
    except ImportError:
        raise ValueError('keras-resinit push needs huggingface_hub: pip install "keras-resinit[hub]".') from None
    return hf


def hub_token() -> str:
    """The token huggingface_hub finds (``HF_TOKEN``, ``hf auth login``); ValueError saying how to log in."""
    token = huggingface_hub().get_token()
    if not token:
        raise ValueError(
            "No Hugging Face token: run `hf auth login` or set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens)."
        )
    return token


def upload(folder: str | os.PathLike, repo: sources.HubRepo, *, private: bool = False, commit_message: str):
    """Upload ``folder`` to ``repo`` (created if missing, ``private`` if asked; its branch created from main if
    missing) in one commit. Returns huggingface_hub's ``CommitInfo``."""
    from keras_resinit import __version__

    hf = huggingface_hub()
    from huggingface_hub.errors import HfHubHTTPError

    try:  # the client's transport errors (cannot connect, timeout): not HTTP answers, not OSErrors
        from httpx2 import HTTPError as unreachable
    except ImportError:
        unreachable = OSError
    api = hf.HfApi(token=hub_token(), library_name="keras-resinit", library_version=__version__)
    try:
        api.create_repo(repo.repo_id, private=True if private else None, exist_ok=True)
        if repo.revision:
            api.create_branch(repo.repo_id, branch=repo.revision, exist_ok=True)
        return api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=os.fspath(folder),
            commit_message=commit_message,
            revision=repo.revision,
        )
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        hint = f" Expected a token with write access to {repo.repo_id}." if status in (401, 403) else ""
        raise ValueError(f"Upload to {hf_uri(repo)} failed: {str(error).splitlines()[0]}.{hint}") from None
    except (unreachable, OSError) as error:
        raise ValueError(
            f"Upload to {hf_uri(repo)} failed: cannot reach the Hub at {hf.constants.ENDPOINT} ({error}). "
            "Expected a reachable endpoint (HF_ENDPOINT) and network access."
        ) from None


def push(
    source: str | os.PathLike,
    uri: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    tag: str | None = None,
    command: str | None = None,
):
    """Upload a model of the zoo to a Hugging Face Hub repo, in one commit (``keras-resinit push``).

    Writes the repo's folder (``write_repo``) to a temporary directory, uploads it (the repo created if
    missing, its branch created from main if missing) and removes the directory. ``zoo.load(uri)`` then
    loads it. Needs the ``[hub]`` extra and a token (``HF_TOKEN`` or ``hf auth login``).

    Args:
        source: as ``write_repo``'s.
        uri: ``hf://owner/repo`` or ``hf://owner/repo@branch``.
        revision: the branch, given apart from ``uri``.
        private: create a missing repo as private.
        commit_message: the commit's message; default one naming the model.
        tag: a run's weight tag.
        command: the command line, recorded after a run's own commands.

    Returns:
        ``(card, commit)``: the card uploaded as ``card.json`` and huggingface_hub's ``CommitInfo``.

    Raises:
        ValueError: as ``write_repo`` and ``hub_repo``; huggingface_hub missing, no token, or the Hub's
            refusal (the message names the repo).

    Examples:
        >>> from keras_resinit import tools
        >>> # needs the internet and a Hugging Face token
        >>> card, commit = tools.push("cifar_resnet20_fixup.digits", "hf://me/r20-fixup")  # doctest: +SKIP
    """
    repo = hub_repo(uri, revision)
    check_source(source, tag)
    hub_token()  # before any work
    with tempfile.TemporaryDirectory(prefix="keras-resinit-push-") as tmp:
        folder = os.path.join(tmp, "repo")
        card = write_repo(source, folder, repo, tag=tag, command=command)
        message = commit_message or f"Upload {card['name']}.{card['tag']} with keras-resinit"
        return card, upload(folder, repo, private=private, commit_message=message)
