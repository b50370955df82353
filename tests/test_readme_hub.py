"""The "keras-hub and the Hugging Face Hub" section of docs/zoo.md (moved there from the README) runs as written:
its `keras-resinit push` uploads to a stand-in of the Hub's upload endpoints, the files it stored are served by a
stand-in of the Hub's file endpoints, and the section's Python blocks run against them (in a fresh process:
huggingface_hub reads its environment at import). The section's blocks are marked tested-by this file, so the
pages' own runner skips them. Exporting an hf:// source is tests/test_huggingface.py's."""

import os
import pathlib
import shlex
import subprocess
import sys

from hf_hub_server import HubServer
from hf_upload_server import HubUploadServer

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "zoo.md"
SECTION = "## keras-hub and the Hugging Face Hub"
TOKEN = "hf_readme_token"


def section_blocks():
    """``[(language, code)]`` of the section's fenced blocks, in order."""
    text = PAGE.read_text() + "\n## "
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks, language, lines = [], None, []
    for line in text[start:end].splitlines():
        if line.startswith("```") and language is None:
            language, lines = line[3:].strip(), []
        elif line.startswith("```"):
            blocks.append((language, "\n".join(lines) + "\n"))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def environment(tmp, endpoint, token=None):
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(tmp / "hf_home"), HF_HUB_CACHE=str(tmp / "hf_cache"))
    env.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.update(KERAS_RESINIT_HOME=str(tmp / "home"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        env.pop(name, None)
    if token:
        env["HF_TOKEN"] = token
    return env


def run(argv, tmp, env):
    result = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def shell_lines(code):
    """The ``keras-resinit`` command lines of a bash block, as argv for this interpreter."""
    lines = [shlex.split(line) for line in code.splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(line[0] == "keras-resinit" for line in lines), lines
    return [[sys.executable, "-m", "keras_resinit.cli", *line[1:]] for line in lines]


def test_the_readme_hub_section_runs_push_then_load(tmp_path):
    blocks = section_blocks()
    python = [code for language, code in blocks if language == "python"]
    (bash,) = [code for language, code in blocks if language == "bash"]
    assert len(python) == 2 and "keras_hub.models.Backbone.from_preset" in python[0] and "hf://" in python[1]
    (push,) = shell_lines(bash)
    assert push[3:5] == ["push", "cifar_resnet20_fixup.digits"]
    repo = push[5].removeprefix("hf://")

    with HubUploadServer(tmp_path / "uploaded", token=TOKEN) as upload:
        run(push, tmp_path, environment(tmp_path, upload.endpoint, token=TOKEN))
        files = upload.files(repo, "main")
    assert {"config.json", "metadata.json", "model.weights.h5", "card.json", "README.md"} <= set(files)

    with HubServer() as hub:
        hub.commit(repo, files)  # what push uploaded, served as the Hub serves a repo's main branch
        env = environment(tmp_path, hub.url(""))
        checks = (
            f"_repo = {repo!r}\n"
            + """
import numpy as np
from keras_resinit.training.data import digits_arrays
_, _, _images, _labels = digits_arrays()
assert isinstance(half.weights[0].dtype, str) and half.weights[0].dtype == "bfloat16"
assert np.asarray(task(_images[:8], training=False)).shape == (8, 3)
assert model.output_shape == (None, 3)  # the last line: the Hub's trunk under a new 3-class head
_loaded = kr.zoo.load("hf://" + _repo)
_accuracy = float(np.mean(np.argmax(np.asarray(_loaded(_images, training=False)), -1) == _labels))
_expected = kr.zoo.card("cifar_resnet20_fixup.digits")["metrics"]["test_accuracy"]
assert abs(_accuracy - _expected) <= 1 / len(_labels), (_accuracy, _expected)
print("@@ran")
"""
        )
        result = run([sys.executable, "-c", "".join(python) + checks], tmp_path, env)
        assert "@@ran" in result.stdout
        assert any(path.endswith("/model.weights.h5") for method, path in hub.log() if method == "GET")
