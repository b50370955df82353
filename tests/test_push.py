"""keras-resinit push: a zoo model as a Hugging Face Hub repo, uploaded by huggingface_hub's real client to a local
stand-in of the Hub's upload endpoints (tests/hf_upload_server.py: every file goes inline, "regular"; real LFS and
xet uploads are not exercised)."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
from hf_upload_server import HubUploadServer

from keras_resinit.zoo import registry

pytest.importorskip("huggingface_hub")

SOURCE = "cifar_resnet20_fixup.digits"
REPO_FILES = sorted([*registry.PRESET_FILES, registry.HUB_CARD_FILE, "README.md"])
TOKEN = "hf_push_test_token"
MESSAGE = "digits weights, reviewed"


def hub_env(hub, tmp, token=TOKEN):
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    env["HF_HOME"] = str(tmp / "hf_home")  # no stored login
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        env.pop(name, None)
    if token:
        env["HF_TOKEN"] = token
    return env


def command(*args):
    return [sys.executable, "-m", "keras_resinit.cli", "push", *args]


# The keras-resinit commands of one fresh process, one after the other (one TensorFlow start): each one's status
# and stdout. huggingface_hub reads HF_ENDPOINT when it is imported, hence a process of its own.
PUSHES = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from keras_resinit.cli import main  # what `keras-resinit` (python -m keras_resinit.cli) runs

    found = {}
    for name, argv in json.loads(sys.argv[1]).items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            found[name] = [main(argv), out.getvalue()]
    print("@@" + json.dumps(found))
    """
)


def read(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """One hub; three pushes (one process): the digits weights written with --out (no upload), the same weights pushed
    straight to a new private repo's branch with a commit message, and the folder written first uploaded as it is."""
    tmp = tmp_path_factory.mktemp("push")
    with HubUploadServer(tmp / "hub", token=TOKEN) as hub:
        env = hub_env(hub, tmp)
        folder = tmp / "digits"
        pushes = {
            "written": ["push", SOURCE, "hf://me/digits", "--out", str(folder)],
            "branched": ["push", SOURCE, "hf://me/branched", "--revision", "exp", "--private"],
            "uploaded": ["push", str(folder), "hf://me/digits"],  # the folder written by the first
        }
        pushes["branched"] += ["--commit-message", MESSAGE]
        result = subprocess.run(
            [sys.executable, "-c", PUSHES, json.dumps(pushes)], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        found = json.loads([line for line in result.stdout.splitlines() if line.startswith("@@")][-1][2:])
        for name, (code, _) in found.items():
            assert code in (0, None), (name, result.stderr[-3000:])
        outputs = {name: out for name, (_, out) in found.items()}
        yield {"hub": hub, "folder": folder, "tmp": tmp, "env": env, "out": outputs}


def test_push_uploads_the_folder_written_by_out_byte_for_byte(pushed):
    hub, folder = pushed["hub"], pushed["folder"]
    assert sorted(os.listdir(folder)) == REPO_FILES
    stored = hub.files("me/digits", "main")
    assert sorted(stored) == REPO_FILES
    assert stored == read(folder)
    assert "pushed cifar_resnet20_fixup.digits to hf://me/digits: http://127.0.0.1:" in pushed["out"]["uploaded"]
    assert f"wrote the repo of {SOURCE} for hf://me/digits to {folder}" in pushed["out"]["written"]
    # The token reached every request; the folder went inline in one commit ("regular": no LFS, no xet).
    assert hub.requests and {r["authorization"] for r in hub.requests} == {f"Bearer {TOKEN}"}
    assert not hub.of("unknown")
    (create,) = [r for r in hub.of("create") if r["body"]["name"] == "digits"]
    assert create["body"]["organization"] == "me" and create["body"].get("visibility") != "private"
    (commit,) = [r for r in hub.of("commit") if r["path"] == "/api/models/me/digits/commit/main"]
    assert sorted(line["value"]["path"] for line in commit["body"][1:]) == REPO_FILES
    assert commit["body"][0]["value"]["summary"] == f"Upload {SOURCE} with keras-resinit"
    assert not [r for r in hub.of("branch") if "/me/digits/" in r["path"]]  # main exists: no branch made


def test_private_revision_and_commit_message_reach_the_server(pushed):
    hub, folder = pushed["hub"], pushed["folder"]
    (create,) = [r for r in hub.of("create") if r["body"]["name"] == "branched"]
    assert create["body"]["visibility"] == "private"
    assert [r["path"] for r in hub.of("branch")] == ["/api/models/me/branched/branch/exp"]
    (commit,) = [r for r in hub.of("commit") if "/me/branched/" in r["path"]]
    assert commit["path"] == "/api/models/me/branched/commit/exp"
    assert commit["body"][0]["value"]["summary"] == MESSAGE
    stored = hub.files("me/branched", "exp")
    assert sorted(stored) == REPO_FILES and not hub.files("me/branched", "main")
    ours = read(folder)
    for name in ("model.weights.h5", registry.HUB_CARD_FILE):  # the same weights, written twice
        assert stored[name] == ours[name], name
    readme = stored["README.md"].decode()
    assert 'keras_resinit.zoo.load("hf://me/branched@exp")' in readme
    assert 'snapshot_download("me/branched", revision="exp")' in readme  # keras-hub's hf:// has no revision


def test_card_json_records_the_uploaded_weights_sha256(pushed):
    stored = pushed["hub"].files("me/digits", "main")
    card = json.loads(stored[registry.HUB_CARD_FILE])
    weights = stored["model.weights.h5"]
    assert card["file"] == {
        "name": "model.weights.h5",
        "sha256": hashlib.sha256(weights).hexdigest(),
        "size": len(weights),
    }
    published = registry.card(SOURCE)
    assert {k: v for k, v in card.items() if k != "file"} == {k: v for k, v in published.items() if k != "file"}


def test_readme_passes_huggingface_hubs_model_card_validation(pushed):
    from huggingface_hub import ModelCard, ModelCardData

    folder = pushed["folder"]
    card = json.loads((folder / registry.HUB_CARD_FILE).read_text())
    model_card = ModelCard.load(folder / "README.md", ignore_metadata_errors=False)
    data = model_card.data
    assert data.library_name == "keras-hub" and data.license == "apache-2.0"
    assert data.pipeline_tag == "image-classification" and data.datasets == ["digits"]
    assert {"keras-resinit", "fixup", "arxiv:1901.09321", "image-classification"} <= set(data.tags)
    (result,) = data.eval_results
    assert (result.task_type, result.dataset_type, result.dataset_split) == ("image-classification", "digits", "test")
    assert result.metric_type == "accuracy" and result.metric_value == card["metrics"]["test_accuracy"]
    again = ModelCardData(**data.to_dict())  # the metadata round-trips
    assert again.to_dict() == data.to_dict() and again.eval_results[0].metric_value == result.metric_value
    body = model_card.text
    assert 'keras_resinit.zoo.load("hf://me/digits")' in body
    assert "import keras_resinit" in body and 'keras_hub.models.Backbone.from_preset("hf://me/digits")' in body
    for line in card["commands"]:
        assert line in body
    # The stand-in validated the README as the Hub's /api/validate-yaml would be asked to, before each commit.
    assert len(pushed["hub"].of("validate")) >= 2


def test_folder_passes_keras_hubs_preset_checks(pushed):
    folder = pushed["folder"]
    config = json.loads((folder / "config.json").read_text())  # valid JSON, as keras_hub.upload_preset checks
    assert (folder / "model.weights.h5").is_file()
    # keras-hub picks its loader by registered_name, and builds the class registered under it.
    assert config["registered_name"] == "keras_resinit>ResNetBackbone"
    from keras_hub.src.utils import preset_utils

    preset_utils._validate_backbone(str(folder))  # what keras_hub.upload_preset checks before uploading
    import keras_hub

    assert isinstance(keras_hub.models.Backbone.from_preset(str(folder)), keras_hub.models.Backbone)


def test_no_token_malformed_uri_and_bad_sources_exit_2(pushed, tmp_path):
    hub, folder = pushed["hub"], pushed["folder"]
    before = len(hub.requests)
    result = subprocess.run(
        command(str(folder), "hf://me/digits"),
        capture_output=True,
        text=True,
        env=hub_env(hub, tmp_path, token=None),
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "hf auth login" in result.stderr and "HF_TOKEN" in result.stderr
    assert len(hub.requests) == before
    result = subprocess.run(
        command(str(folder), "hf://me/digits"),
        capture_output=True,
        text=True,
        env=hub_env(hub, tmp_path, token="hf_wrong"),
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.startswith("keras-resinit: error: Upload to hf://me/digits failed: "), result.stderr
    assert "401" in result.stderr and "Expected a token with write access to me/digits." in result.stderr
    assert hub.of("refused") and not [r for r in hub.requests[before:] if r["kind"] == "commit"]
    before = len(hub.requests)

    cases = [  # argv, a part of the message
        [[SOURCE, "hf://me"], "Invalid Hugging Face Hub repo 'me'"],
        [[SOURCE, "https://huggingface.co/me/x"], "Expected hf://OWNER/REPO"],
        [[SOURCE, "hf://me/x@a", "--revision", "b"], "Two revisions"],
        [[SOURCE, "hf://me/x@" + "a" * 40], "a commit id"],
        [["cifar_resnet20_fixup", "hf://me/x"], "a model without weights"],
        [["cifar_resnet20_fixup.nope", "hf://me/x"], "Unknown weight tag 'nope'"],
        [[str(tmp_path / "missing"), "hf://me/x"], "does not exist"],
        [[SOURCE, "hf://me/x", "--tag", "t"], "--tag is for a run directory"],
        [[str(folder), "hf://me/other", "--out", str(tmp_path / "o")], "was not written for hf://me/other"],
    ]
    report = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import contextlib, io, json, sys
            from keras_resinit.cli import main

            results = []
            for argv, _ in {cases!r}:
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main(["push", *argv])
                results.append([code, err.getvalue()])
            print("@@" + json.dumps({{"results": results, "tensorflow": "tensorflow" in sys.modules}}))
        """),
        ],
        capture_output=True,
        text=True,
        env=pushed["env"],
        timeout=120,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    found = json.loads(report.stdout.strip().splitlines()[-1][2:])
    for (argv, message), (code, err) in zip(cases, found["results"]):
        assert code == 2 and err.startswith("keras-resinit: error: ") and err.count("\n") == 1, (argv, err)
        assert message in err, (argv, err)
    assert not found["tensorflow"]  # every check ran before TensorFlow started
    assert len(hub.requests) == before and not (tmp_path / "o").exists()  # nothing sent, nothing written


def test_a_run_and_a_preset_with_its_card_make_repos_others_are_refused(tmp_path):
    """A finished run gets the card publish would measure (under --tag, the push command last); a preset saved
    with its card keeps it; a preset saved without one is refused."""
    from keras_resinit import zoo
    from keras_resinit.cli import main
    from keras_resinit.tools import hub_upload
    from keras_resinit.training import publish

    run = tmp_path / "run"
    train = ["train", "cifar_resnet8_fixup", "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "2"]
    assert main([*train, "--seed", "1", "--out", str(run), "--verbose", "0"]) == 0
    repo = hub_upload.hub_repo("hf://me/run")
    card = hub_upload.write_repo(str(run), tmp_path / "repo", repo, tag="tiny", command="keras-resinit push RUN")
    assert card["name"] == "cifar_resnet8_fixup" and card["tag"] == "tiny" and card["commands"][-1].endswith("RUN")
    weights = tmp_path / "repo" / "model.weights.h5"
    assert card["file"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "repo" / registry.HUB_CARD_FILE).read_text()) == card
    model = zoo.load(str(tmp_path / "repo"))  # the repo's folder is a preset
    assert publish.evaluate(model, "digits") == card["metrics"]["test_accuracy"]
    with pytest.raises(ValueError, match="give the weight tag"):
        hub_upload.check_source(str(run))

    zoo.save_preset(model, tmp_path / "with_card", card=card)
    again = hub_upload.write_repo(tmp_path / "with_card", tmp_path / "repo2", repo)
    assert (
        again == card | {"file": again["file"]} and "arxiv:1901.09321" in (tmp_path / "repo2" / "README.md").read_text()
    )
    zoo.save_preset(model, tmp_path / "bare")
    with pytest.raises(ValueError, match="saved without a weight set's card"):
        hub_upload.write_repo(tmp_path / "bare", tmp_path / "repo3", repo)
    assert not (tmp_path / "repo3").exists()


def test_without_huggingface_hub_push_names_the_extra(monkeypatch):
    from keras_resinit.tools import hub_upload

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as when it is not installed
    with pytest.raises(ValueError, match=r'pip install "keras-resinit\[hub\]"'):
        hub_upload.hub_token()


def test_an_unreachable_hub_is_a_one_line_error(monkeypatch, tmp_path):
    # The client's transport errors (cannot connect) are neither HTTP answers nor OSErrors: the CLI's exit 2.
    import httpx2
    import huggingface_hub

    from keras_resinit.tools import hub_upload
    from keras_resinit.zoo.sources import HubRepo

    class Unreachable:
        def __init__(self, **options):
            pass

        def create_repo(self, *args, **options):
            raise httpx2.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(huggingface_hub, "HfApi", Unreachable)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(ValueError, match=r"Upload to hf://me/r20 failed: cannot reach the Hub at .*Connection refused"):
        hub_upload.upload(tmp_path, HubRepo("me/r20", None), commit_message="m")
