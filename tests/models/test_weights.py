"""Weights files: round trip, refusal of wrong/tampered/mismatched files, resolution, download."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest

from napari_lungkd.errors import WeightsError
from napari_lungkd.models.specs import build_model, get_spec
from napari_lungkd.models.weights import (
    file_sha256,
    install,
    list_weights,
    load_state_into,
    load_weights,
    resolve_weights,
    save_weights,
    verify,
)

META = {
    "training": {"epochs": 1},
    "data_split": {"train": ["A"], "val": ["B"]},
    "metrics": {"dice": 0.5},
}


@pytest.fixture(scope="module")
def student_state():
    import torch

    torch.manual_seed(1)
    return build_model(get_spec("student")).state_dict()


@pytest.fixture
def student_file(tmp_path, student_state):
    path = tmp_path / "student.safetensors"
    sha = save_weights(path, student_state, get_spec("student"), META)
    return path, sha


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path / "cache"))


def test_round_trip_keeps_tensors_spec_and_metadata(student_file, student_state):
    import torch

    path, sha = student_file
    assert sha == file_sha256(path) and len(sha) == 64
    state, info = load_weights(path, expected_spec=get_spec("student"))
    assert info.spec == get_spec("student") and info.sha256 == sha
    assert info.metadata["metrics"] == {"dice": 0.5}
    assert info.metadata["data_split"]["val"] == ["B"]
    assert info.metadata["preprocessing"]["hu_window"] == [-1000.0, 400.0]
    assert info.metadata["package_version"]
    assert set(state) == set(student_state)
    key = "encoder.conv1.weight"
    assert torch.equal(state[key], student_state[key])
    model = build_model(get_spec("student"))
    load_state_into(model, state, path)  # fits exactly


def test_wrong_expected_hash_is_refused(student_file):
    path, sha = student_file
    with pytest.raises(WeightsError, match=str(path.name)):
        load_weights(path, expected_sha256="0" * 64)


def test_tampered_tensor_bytes_are_refused(student_file):
    path, _ = student_file
    data = bytearray(path.read_bytes())
    data[-1000] ^= 0xFF  # flip a byte inside the tensor data, header intact
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="tampered"):
        load_weights(path)


def test_truncated_file_is_refused(student_file):
    path, _ = student_file
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="safetensors"):
        load_weights(path)


def test_weights_for_another_model_are_refused(student_file):
    path, _ = student_file
    with pytest.raises(WeightsError, match="not for model 'teacher'"):
        load_weights(path, expected_spec=get_spec("teacher"))


def test_tensor_shape_mismatch_is_refused(tmp_path):
    spec3 = get_spec("student").with_(context_slices=3)
    path = tmp_path / "lying.safetensors"
    # tensors of a 3-channel model saved under the 1-channel spec
    save_weights(path, build_model(spec3).state_dict(), get_spec("student"), {})
    with pytest.raises(WeightsError, match="does not fit the model.*wrong shape"):
        verify(path)


def test_pickled_checkpoint_only_loads_weights_only(tmp_path, student_state):
    import torch

    good = tmp_path / "ckpt.pt"
    torch.save({"state_dict": student_state, "spec": get_spec("student").to_dict()}, good)
    state, info = load_weights(good)
    assert info.spec.encoder == "resnet18" and len(state) == len(student_state)
    assert info.warnings

    class Evil:
        def __reduce__(self):
            return (print, ("this would have run",))

    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": student_state, "payload": Evil()}, bad)
    with pytest.raises(WeightsError, match="weights_only"):
        load_weights(bad)


def test_resolution_order_explicit_user_then_missing(tmp_path, student_file):
    path, _ = student_file
    assert resolve_weights("student", path) == path
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights("student", tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="lungkd weights install"):
        resolve_weights("student", registry=tmp_path / "no_registry.json")
    info = install(str(path))
    assert info.path == tmp_path / "user" / "student.safetensors"
    assert resolve_weights("student", registry=tmp_path / "no_registry.json") == info.path
    rows = list_weights(registry=tmp_path / "no_registry.json")
    assert rows[0]["name"] == "student" and rows[0]["where"] == "user"


@pytest.fixture
def loopback_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))

    class Quiet(handler.func):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_registry_download_is_checked_against_pinned_sha(
    tmp_path, student_file, loopback_server, monkeypatch
):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    path, sha = student_file
    served, url = loopback_server
    (served / "student.safetensors").write_bytes(path.read_bytes())
    registry = tmp_path / "reg" / "registry.json"
    registry.parent.mkdir()
    registry.write_text(
        json.dumps(
            {
                "student": {
                    "file": "student.safetensors",
                    "sha256": sha,
                    "url": f"{url}/student.safetensors",
                }
            }
        )
    )
    got = resolve_weights("student", registry=registry)
    assert got.parent == tmp_path / "cache" and file_sha256(got) == sha
    load_weights(got, expected_sha256=sha)

    # the server now serves other bytes: a fresh download is refused
    (served / "teacher.safetensors").write_bytes(b"not the pinned file")
    registry.write_text(
        json.dumps(
            {
                "teacher": {
                    "file": "teacher.safetensors",
                    "sha256": sha,
                    "url": f"{url}/teacher.safetensors",
                }
            }
        )
    )
    with pytest.raises(WeightsError, match="refused"):
        resolve_weights("teacher", registry=registry)
    assert not (tmp_path / "cache" / "teacher.safetensors").exists()


def test_cli_weights_verify_install_list_json(tmp_path, student_file, capsys):
    from napari_lungkd.cli.main import main

    path, sha = student_file
    out = tmp_path / "verify.json"
    assert main(["weights", "verify", str(path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["files"][0]["sha256"] == sha and report["files"][0]["ok"] is True
    assert main(["weights", "install", str(path)]) == 0
    out2 = tmp_path / "list.json"
    assert main(["weights", "list", "--json", str(out2)]) == 0
    names = [r["name"] for r in json.loads(out2.read_text())["weights"]]
    assert "student" in names
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    assert main(["weights", "verify", str(path)]) == 2
    assert "tampered" in capsys.readouterr().err


def test_int8_and_fp16_compressed_files_load_into_the_model(tmp_path, student_state):
    import torch

    from napari_lungkd.models.quant import compress

    for scheme in ("fp16", "int8"):
        path = tmp_path / f"student-{scheme}.safetensors"
        save_weights(
            path, compress(student_state, scheme), get_spec("student"), {"precision": scheme}
        )
        state, info = load_weights(path, expected_spec=get_spec("student"))
        model = build_model(get_spec("student"))
        load_state_into(model, state, path)
        w = model.state_dict()["encoder.layer1.0.conv1.weight"]
        ref = student_state["encoder.layer1.0.conv1.weight"]
        assert w.dtype == torch.float32
        assert (w - ref).abs().max() <= ref.abs().max() / 127 + 1e-6


def test_cli_weights_install_keeps_an_installed_file_unless_asked(
    tmp_path, student_file, student_state, capsys
):
    from napari_lungkd.cli.main import main

    path, sha = student_file
    assert main(["weights", "install", str(path)]) == 0
    installed = tmp_path / "user" / "student.safetensors"
    other = tmp_path / "other" / "student.safetensors"
    other.parent.mkdir()
    other_sha = save_weights(
        other, student_state, get_spec("student"), {**META, "note": "another run"}
    )
    assert other_sha != sha
    capsys.readouterr()
    assert (
        main(["weights", "install", str(other)]) == 2
    )  # another file of the same model: ask first
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and file_sha256(installed) == sha
    assert main(["weights", "install", str(path)]) == 0  # the same file again is fine
    assert main(["weights", "install", str(other), "--overwrite"]) == 0
    assert file_sha256(installed) == other_sha


def test_a_2_5d_student_file_loads_under_the_student_name_and_segments(tmp_path):
    import numpy as np

    from napari_lungkd.ct import CtVolume
    from napari_lungkd.inference.segmenter import segment

    spec3 = get_spec("student").with_(context_slices=3)
    path = tmp_path / "student25d.safetensors"
    save_weights(path, build_model(spec3).state_dict(), spec3, {})
    state, info = load_weights(path, expected_spec=get_spec("student"))
    assert info.spec.context_slices == 3
    ct = CtVolume(hu=np.full((5, 64, 64), -800.0, np.float32), spacing_mm=(2.0, 0.7, 0.7))
    seg = segment(ct, "student", device="cpu", weights=path)
    assert seg.probability.shape == ct.shape
    with pytest.raises(WeightsError, match="not for model 'teacher'"):
        load_weights(path, expected_spec=get_spec("teacher"))
