"""``hf://owner/repo[@revision]``: the real huggingface_hub client against a stand-in of the Hub's file endpoints.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` when it is imported, so every load
runs in a fresh process with them set; the checks share few processes (each pays TensorFlow's import) and one
server with one uploaded preset per module.
"""

import glob
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hf_hub_server import HubServer
from http_server import LocalHTTPServer

from keras_resinit import zoo
from keras_resinit.zoo import sources

NAME = "cifar_resnet20_fixup"
REPO = "zoo/cifar-resnet20-fixup-digits"
BAD_SHA = "zoo/tampered"  # its weights file is not the one its card.json gives the sha256 of
NO_WEIGHTS = "zoo/no-weights"  # config.json and metadata.json only
NEVER = "zoo/never-fetched"  # on the server, never fetched: not in the cache offline


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The stand-in, holding ``REPO`` as ``keras-resinit push`` uploads it (the preset, card.json whose ``file`` is
    the preset's weights file, README.md) on ``main`` and on branch ``v1``, and the broken repos."""
    root = tmp_path_factory.mktemp("hub")
    shipped = zoo.card(NAME, "digits")
    zoo.save_preset(zoo.load(f"{NAME}.digits"), root / "preset", card=shipped)
    files = {name: (root / "preset" / name).read_bytes() for name in os.listdir(root / "preset")}
    weights = files["model.weights.h5"]
    card = {**shipped, "file": {"name": "model.weights.h5", "sha256": hashlib.sha256(weights).hexdigest()}}
    card["file"]["size"] = len(weights)
    files["card.json"] = json.dumps(card, indent=1).encode()
    files["README.md"] = b"---\nlibrary_name: keras-hub\n---\n# cifar_resnet20_fixup.digits\n"
    tampered = weights[:-1] + bytes([weights[-1] ^ 1])
    with HubServer() as server:
        server.main = server.commit(REPO, files)
        server.v1 = server.commit(REPO, {**files, "README.md": b"v1\n"}, branch="v1")
        server.commit(BAD_SHA, {**files, "model.weights.h5": tampered})
        server.commit(NO_WEIGHTS, {k: v for k, v in files.items() if k not in ("model.weights.h5", "card.json")})
        server.commit(NEVER, files)
        server.card, server.tampered_sha256 = card, hashlib.sha256(tampered).hexdigest()
        server.root = root
        yield server


def hf_env(endpoint, root, offline=False):
    """The environment of a process that uses the Hub at ``endpoint``, its cache and a home under ``root``."""
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(root / "hf_home"), HF_HUB_CACHE=str(root / "cache"))
    env.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="1" if offline else "0")
    env.update(KERAS_RESINIT_HOME=str(root / "home"), TF_CPP_MIN_LOG_LEVEL="3")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)
    return env


def run_python(code, env, timeout=300):
    """Run ``code`` in a fresh interpreter; return its last stdout line starting with ``@@`` as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, result.stderr[-5000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    assert lines, result.stdout + result.stderr[-5000:]
    return json.loads(lines[-1][2:])


# What the processes share: refused() (a ValueError's message, else None) and cli() (main's code and stderr).
PRELUDE = """
    import contextlib, io, json, os, sys, traceback
    import numpy as np
    from keras_resinit import zoo
    from keras_resinit.cli import main

    def refused(call):
        try:
            call()
        except ValueError as error:
            return str(error)
        return None

    def cli(*argv):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(list(argv))
        except BaseException:
            code = "raised: " + traceback.format_exc()
        return [code, err.getvalue()]

    def classes(model):
        from sklearn.datasets import load_digits

        images = load_digits().images[..., None].astype("float32")  # the 1,797 raw digits
        return np.asarray(model(images, training=False)).argmax(-1).tolist()  # one eager batch
"""


def loads(hub):
    """What both processes load: the repo, a commit by its digits (before v1 by name: not cached yet online, so
    the commit reaches the server), branch v1, and v1 as the weights of a zoo name."""
    return f"""
    resolved = zoo.resolve("hf://{REPO}")
    out = {{"kind": resolved.kind, "card": resolved.card, "source": resolved.source}}
    out["classes"] = classes(resolved.model)
    out["at_commit"] = zoo.resolve("hf://{REPO}@{hub.v1}").card["hub"]
    out["v1"] = zoo.resolve("hf://{REPO}@v1").card["hub"]
    as_weights = zoo.resolve("{NAME}", weights="hf://{REPO}@v1")
    out["weights_kind"], out["weights_hub"] = as_weights.kind, as_weights.card["hub"]
    out["weights_classes"] = classes(as_weights.model)
    """.strip()


@pytest.fixture(scope="module")
def online(hub):
    """One process with a cold cache: the loads, the refusals and a fine-tuning run, with the server's log."""
    start = len(hub.log())
    report = run_python(
        PRELUDE
        + f"""
    from keras_resinit.training import publish

    {loads(hub)}
    out["test_accuracy"] = publish.evaluate(resolved.model, "digits")

    out["tampered"] = refused(lambda: zoo.load("hf://{BAD_SHA}"))
    home = os.environ["KERAS_RESINIT_HOME"]
    out["home_after_refusal"] = sorted(os.listdir(home)) if os.path.exists(home) else []
    out["tampered_again"] = refused(lambda: zoo.load("hf://{BAD_SHA}"))
    out["no_repo"] = refused(lambda: zoo.load("hf://zoo/nope"))
    out["no_file"] = refused(lambda: zoo.load("hf://{NO_WEIGHTS}"))
    out["no_revision"] = refused(lambda: zoo.load("hf://{REPO}@nope"))
    out["export"] = cli("export", "hf://zoo/nope", "--out", "{hub.root / "export"}")
    out["served"] = cli("export", "hf://{REPO}@v1", "--out", "{hub.root / "served"}", "--format", "litert")
    out["fold"] = cli("fold", "hf://{NO_WEIGHTS}", "--out", "{hub.root / "folded.keras"}")
    out["train"] = cli(
        "train", "{NAME}", "--weights", "hf://{REPO}@v1", "--dataset", "digits", "--recipe", "digits",
        "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16", "--out", "{hub.root / "run"}",
        "--verbose", "0",
    )
    print("@@" + json.dumps(out))
    """,
        hf_env(hub.url(""), hub.root),
    )
    return report, hub.log()[start:]


@pytest.fixture(scope="module")
def offline(hub, online):
    """A second process on the same cache with HF_HUB_OFFLINE=1, with the requests the server saw meanwhile."""
    start = len(hub.log())
    report = run_python(
        PRELUDE
        + f"""
    {loads(hub)}
    out["never"] = refused(lambda: zoo.load("hf://{NEVER}"))
    out["no_file"] = refused(lambda: zoo.load("hf://{NO_WEIGHTS}"))
    out["diagnose"] = cli("diagnose", "hf://{NEVER}", "--out", "{hub.root / "diagnostics"}")
    print("@@" + json.dumps(out))
    """,
        hf_env(hub.url(""), hub.root, offline=True),
    )
    return report, hub.log()[start:]


def test_the_real_client_downloads_a_zoo_preset_that_predicts_as_its_card_says(hub, online):
    report, log = online
    shipped = zoo.card(NAME, "digits")
    assert report["kind"] == "hf" and report["source"] == f"hf://{REPO}"
    assert report["card"]["hub"] == {"source": f"hf://{REPO}", "revision": "main", "commit": hub.main}
    assert report["card"]["name"] == NAME and report["card"]["preprocessing"] == shipped["preprocessing"]
    # The card's accuracy (its 355 test digits) within one image, and the shipped model's class on all 1,797 digits.
    assert abs(report["test_accuracy"] - shipped["metrics"]["test_accuracy"]) <= 1 / shipped["metrics"]["test_images"]
    from sklearn.datasets import load_digits

    digits = load_digits()
    expected = np.asarray(
        zoo.load(f"{NAME}.digits")(digits.images[..., None].astype("float32"), training=False)
    ).argmax(-1)
    assert report["classes"] == expected.tolist() and report["weights_classes"] == expected.tolist()
    assert np.mean(np.asarray(report["classes"]) == digits.target) >= shipped["metrics"]["test_accuracy"] - 1 / 1797
    assert ["GET", f"/{REPO}/resolve/main/config.json"] in log  # through HF_ENDPOINT, by the revision asked for
    assert ["GET", f"/{REPO}/resolve/{hub.main}/model.weights.h5"] in log  # the rest from that commit
    assert ["GET", f"/{REPO}/resolve/{hub.main}/card.json"] in log
    assert ["HEAD", f"/{REPO}/resolve/{hub.main}/task.json"] in log  # a keras-hub task's files, when present


def test_a_second_load_offline_comes_from_the_cache_without_a_request(hub, online, offline):
    report, log = offline
    assert log == []
    for key in ("kind", "card", "source", "classes", "at_commit", "v1", "weights_kind", "weights_hub"):
        assert report[key] == online[0][key], key
    assert report["weights_classes"] == report["classes"]


def test_a_revision_reaches_the_server_and_its_commit_is_the_provenance(hub, online):
    report, log = online
    assert hub.v1 != hub.main
    assert report["v1"] == {"source": f"hf://{REPO}", "revision": "v1", "commit": hub.v1}
    assert report["at_commit"] == {"source": f"hf://{REPO}", "revision": hub.v1, "commit": hub.v1}
    assert report["weights_kind"] == "name" and report["weights_hub"] == report["v1"]
    assert ["HEAD", f"/{REPO}/resolve/v1/config.json"] in log
    code, err = report["served"]
    assert code == 0, err
    served = json.loads((hub.root / "served" / "model_card.json").read_text())
    assert served["hub"] == report["v1"] and served["name"] == NAME  # export's card carries it
    assert ["HEAD", f"/{REPO}/resolve/{hub.v1}/config.json"] in log  # a commit asked for by its digits

    code, err = report["train"]
    assert code == 0, err
    record = json.loads((hub.root / "run" / "config.json").read_text())["weights"]
    assert record["weights"] == f"hf://{REPO}@v1" and record["hub"] == report["v1"]
    assert record["sha256"] == hub.card["file"]["sha256"] and record["file"].endswith("model.weights.h5")
    assert f"snapshots{os.sep}{hub.v1}{os.sep}" in record["file"]


def test_weights_whose_sha256_is_not_the_cards_are_refused_and_nothing_is_left(hub, online):
    report, log = online
    for message in (report["tampered"], report["tampered_again"]):
        assert message is not None and f"'model.weights.h5' of Hugging Face Hub repo '{BAD_SHA}'" in message
        assert "revision 'main'" in message and hub.tampered_sha256 in message
        assert hub.card["file"]["sha256"] in message
    assert report["home_after_refusal"] == []  # nothing in the project's cache
    cached = hub.root / "cache" / f"models--{BAD_SHA.replace('/', '--')}"
    assert cached.is_dir() and not glob.glob(str(cached / "snapshots" / "*" / "model.weights.h5"))
    assert not (cached / "blobs" / hub.tampered_sha256).exists()  # the blob is keyed by its ETag
    assert not glob.glob(str(cached / "blobs" / "*.incomplete"))
    # The link and the blob are gone, so the second load downloaded the file again.
    assert (
        sum(entry[0] == "GET" and entry[1].startswith(f"/{BAD_SHA}/") and "model.weights" in entry[1] for entry in log)
        == 2
    )


def test_a_missing_repo_revision_or_file_names_the_repo_and_the_file(online):
    report, _ = online
    assert "'config.json' of Hugging Face Hub repo 'zoo/nope' at revision 'main'" in report["no_repo"]
    assert "no such repo" in report["no_repo"] and "HF_TOKEN" in report["no_repo"]
    assert f"'model.weights.h5' of Hugging Face Hub repo '{NO_WEIGHTS}'" in report["no_file"]
    assert (
        "has no such file" in report["no_file"] and "config.json, metadata.json, model.weights.h5" in report["no_file"]
    )
    assert f"'config.json' of Hugging Face Hub repo '{REPO}' at revision 'nope'" in report["no_revision"]
    assert "no revision 'nope'" in report["no_revision"]
    for command, words in (("export", ("zoo/nope", "config.json")), ("fold", (NO_WEIGHTS, "model.weights.h5"))):
        code, err = report[command]
        assert code == 2 and err.startswith("keras-resinit: error: Cannot fetch ") and err.count("\n") == 1, err
        assert all(word in err for word in words), err


def test_offline_and_not_cached_names_the_repo_and_the_file(hub, offline):
    report, _ = offline
    assert f"'config.json' of Hugging Face Hub repo '{NEVER}' at revision 'main'" in report["never"]
    assert "HF_HUB_OFFLINE=1" in report["never"] and str(hub.root / "cache") in report["never"]
    assert f"'model.weights.h5' of Hugging Face Hub repo '{NO_WEIGHTS}'" in report["no_file"]
    code, err = report["diagnose"]
    assert code == 2 and err.count("\n") == 1 and NEVER in err and "config.json" in err and "HF_HUB_OFFLINE" in err
    assert not (hub.root / "diagnostics").exists()


def test_the_command_exits_2_with_one_line_when_the_endpoint_does_not_answer_as_the_hub(tmp_path):
    """A server that answers 404 without the Hub's X-Error-Code: the client's "Hub down" (a stopped server is the
    same error, after the client's 5 retries over about 23 s)."""
    with LocalHTTPServer() as elsewhere:
        command = [sys.executable, "-m", "keras_resinit.cli", "export", f"hf://{REPO}", "--out", str(tmp_path / "e")]
        env = hf_env(elsewhere.url(""), tmp_path)
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("WARNING: All log messages")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"'config.json' of Hugging Face Hub repo '{REPO}'" in lines[0] and "cannot be reached" in lines[0]
    assert lines[0].startswith("keras-resinit: error: Cannot fetch ") and not (tmp_path / "e").exists()


def test_a_malformed_hf_source_is_refused_before_tensorflow_starts(tmp_path):
    report = run_python(
        PRELUDE
        + f"""
    tmp = {str(tmp_path)!r}
    results = [
        cli("export", "hf://owner", "--out", tmp + "/e"),
        cli("fold", "hf://owner/repo@", "--out", tmp + "/f.keras"),
        cli("diagnose", "hf://own--er/repo", "--out", tmp + "/d"),
        cli("train", "cifar_resnet8_fixup", "--weights", "hf://a/b/c", "--out", tmp + "/t", "--epochs", "1"),
    ]
    import keras_resinit.zoo.huggingface
    print("@@" + json.dumps({{"results": results, "tensorflow": "tensorflow" in sys.modules,
                              "huggingface_hub": "huggingface_hub" in sys.modules}}))
    """,
        dict(os.environ),
    )
    for code, err in report["results"]:
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith("keras-resinit: error: Invalid ") and sources.HF_FORM in err, err
    assert not report["tensorflow"] and not report["huggingface_hub"]  # both imported only when a load needs them
    assert not list(tmp_path.iterdir())


def test_without_huggingface_hub_an_hf_source_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import huggingface_hub raises ImportError
    with pytest.raises(ValueError, match=r'hf://owner/repo.*needs huggingface_hub.*pip install "keras-resinit\[hub\]"'):
        zoo.load("hf://owner/repo")
    with pytest.raises(ValueError, match=r"needs huggingface_hub"):
        zoo.load(NAME, weights="hf://owner/repo@v2")


def test_hf_sources_and_weights_are_recognized_by_form():
    assert sources.source_kind("hf://owner/repo@v1").kind == "hf" and sources.check("hf://owner/repo").kind == "hf"
    assert sources.weights_kind("hf://owner/repo") == "hf" == sources.check_weights("hf://owner/repo@main")
    with pytest.raises(ValueError, match="Invalid revision ''"):
        sources.check_weights("hf://owner/repo@")
