"""The command line as a user runs it: real subprocesses, real files, one-line errors."""

import json
import subprocess
import sys

import av
import pytest


def run(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "straightline", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_world_render_from_prompt_writes_a_browser_playable_mp4(tmp_path):
    out = tmp_path / "ball.mp4"
    r = run("world", "render", "a red ball bouncing on a wooden floor", "--size", "160x90", "--seconds", "1",
            "--fps", "12", "-o", str(out), "--ground-truth", str(tmp_path / "gt.json"))
    assert "13 frames" in r.stdout and "short:" in r.stdout and "long:" in r.stdout
    with av.open(str(out)) as f:
        s = f.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt, s.width, s.height) == ("h264", "yuv420p", 160, 90)
        assert sum(1 for _ in f.decode(video=0)) == 13
    gt = json.loads((tmp_path / "gt.json").read_text())
    red = [t for t in gt["tracks"] if t["color"] == "red" and t["shape"] == "ball"]
    assert red and red[0]["motion"] == "bounce" and len(red[0]["center"]) == 13
    assert gt["scene"]["background"] == "wooden floor"


def test_frame_counts_are_mapped_and_said(tmp_path):
    r = run("world", "render", "--seed", "3", "--size", "64x64", "--seconds", "1", "--fps", "10",
            "-o", str(tmp_path / "x.mp4"))
    assert "13 frames" in r.stdout and "1 + 4k" in r.stdout  # 11 frames asked -> 13


@pytest.mark.parametrize("args, field", [
    (["--size", "320by180"], "size"),
    (["--aspect", "16:0"], "aspect"),
    (["--fps", "1000"], "fps"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, field):
    r = run("world", "render", "a ball", *args, "-o", str(tmp_path / "x.mp4"), check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("straightline: error: " + field)


def test_export_then_inspect(tmp_path):
    run("world", "export", "--n", "3", "--out", str(tmp_path / "set"), "--resolution", "64", "--seconds", "0.5",
        "--fps", "8")
    r = run("data", "inspect", str(tmp_path / "set"))
    assert "3" in r.stdout


def test_vae_recon_reports_psnr_and_errors_on_corrupt_files(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    r = run("vae", "recon", str(bad), check=False)
    assert r.returncode == 2 and "bad.mp4" in r.stderr and "Traceback" not in r.stderr
