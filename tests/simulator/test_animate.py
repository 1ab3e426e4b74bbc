"""``tessera animate``: frames, GIF, heat maps and the text view of the micro-simulator.

The frame-count rule (``simulator.micro.draw.FRAME_RULE``): the GIF has one title frame, then
one frame per cycle, and the cycles are the fold model's compute cycles.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from architectures.systolic import fold_plan
from simulator.cli import main
from simulator.micro import random_operands, simulate_gemm
from simulator.micro.draw import MAX_FRAMES, TITLE_FRAMES, write_animation, write_heatmaps
from workloads.ops import GemmShape

TUTORIAL_01 = Path(__file__).resolve().parents[2] / "experiments" / "tutorials" / "01_one_gemm.yaml"


@pytest.mark.parametrize("df", ["os", "ws"])
def test_gif_of_a_4x4_array_computing_a_4x8x4_gemm_has_a_title_frame_and_one_frame_per_cycle(tmp_path, df):
    out = tmp_path / df
    assert main(["animate", "--gemm", "4x8x4", "--array", "4x4", "--dataflow", df, "--out", str(out)]) == 0
    cycles = fold_plan(GemmShape(4, 8, 4), 4, 4, df).compute_cycles
    assert cycles == {"os": 14, "ws": 28}[df]  # os: 1 fold of 8+4+4-2; ws: 2 K-folds of 2x4+4+4-2
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == TITLE_FRAMES + cycles == cycles + 1
        assert gif.is_animated
    frames = sorted(p.name for p in (out / "frames").iterdir())
    assert frames == ["cycle_%05d.png" % i for i in range(cycles)] + ["title.png"]
    assert (out / "utilization.png").stat().st_size > 0


def test_write_animation_returns_every_file_and_clears_stale_frames(tmp_path):
    gemm = GemmShape(3, 2, 3)
    A, B = random_operands(gemm)
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "cycle_09999.png").write_bytes(b"old")
    run = simulate_gemm(A, B, 4, 4, "is", record=True)
    files = write_animation(run, tmp_path)
    assert len(files) == 1 + run.cycles + 2  # PNG frames, the GIF, the heat maps
    assert not (tmp_path / "frames" / "cycle_09999.png").exists()
    with Image.open(tmp_path / "animation.gif") as gif:
        assert gif.n_frames == 1 + run.cycles


def test_heatmaps_of_many_folds(tmp_path):
    gemm = GemmShape(9, 3, 9)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 2, 2, "os")  # 25 folds; no recording needed for heat maps
    path = write_heatmaps(run, tmp_path / "u.png")
    with Image.open(path) as img:
        assert img.size[0] > 500


def test_text_view_prints_every_cycle_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["animate", "--gemm", "4x8x4", "--array", "4x4", "--dataflow", "ws", "--text"]) == 0
    out = capsys.readouterr().out
    for t in range(1, 29):
        assert f"cycle {t}/28 " in out
    assert "cycles per fold = 2R + C + M - 2 = 2x4 + 4 + 4 - 2 = 14" in out
    assert "wB3,0" in out  # cycle 1: the weight row for PE row 3 enters at the top
    assert "*A0,0·B0,0" in out  # cycle 5: the first MAC
    assert "partial sum (k 0..3 of 8) leaves to the ofmap buffer: O0,0" in out
    assert "output leaves the array: O0,0=" in out
    assert "checked: 28 simulated cycles = the fold model's 28" in out
    assert not (tmp_path / "results").exists()


def test_wide_arrays_get_one_character_per_pe(capsys):
    assert main(["animate", "--gemm", "3x2x12", "--array", "2x12", "--dataflow", "os", "--text"]) == 0
    out = capsys.readouterr().out
    assert "r0  *" in out and "A0,0·B0,0" not in out


def test_experiment_file_and_the_mapper_choice(tmp_path, capsys):
    assert main(["animate", str(TUTORIAL_01), "--text"]) == 0
    out = capsys.readouterr().out
    assert "GEMM 16x27x8 (MxKxN) on an 8x8 array, os dataflow" in out
    assert "fold model: 82 cycles; simulated: 82 cycles" in out
    auto = tmp_path / "auto.yaml"
    auto.write_text("name: auto\n"
                    "architecture: {preset: scalesim_32x32, overrides: {rows: 8, cols: 8}}\n"
                    "workload: {gemm: {M: 16, K: 27, N: 8}}\n"
                    "mapper: {dataflow: auto}\n")
    assert main(["animate", str(auto), "--text", "--dataflow", "is"]) == 0
    assert "is dataflow" in capsys.readouterr().out
    assert main(["animate", str(auto), "--text"]) == 0
    assert "os dataflow" in capsys.readouterr().out  # what `tessera run` picks: os (82 cycles) is fastest


@pytest.mark.parametrize("argv, message", [
    (["--gemm", "4x8x4", "--array", "64x64"], "too large to draw; the limit is 32x32 PEs"),
    (["--gemm", "400x400x400", "--array", "4x4"], f"the limit is {MAX_FRAMES:,} cycles"),
    (["--gemm", "4x8"], "expected MxKxN"),
    (["--gemm", "4x0x4"], "expected MxKxN"),
    (["--gemm", "4x8x4", "--array", "4by4"], "expected RxC"),
    ([], "give a GEMM"),
])
def test_bad_input_exits_2_naming_the_limit(argv, message, capsys):
    assert main(["animate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_experiment_that_is_not_a_gemm_exits_2(tmp_path, capsys):
    exp = tmp_path / "cnn.yaml"
    exp.write_text("name: cnn\narchitecture: {preset: scalesim_32x32}\nworkload: {model: resnet18}\n")
    assert main(["animate", str(exp)]) == 2
    err = capsys.readouterr().err
    assert f"{exp}" in err and "draws a single GEMM" in err and "resnet18" in err
    assert main(["animate", str(exp), "--gemm", "4x4x4"]) == 2
    assert "not both" in capsys.readouterr().err
