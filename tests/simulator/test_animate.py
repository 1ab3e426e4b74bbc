"""``tessera animate``: frames, GIF, heat maps and the text view of the micro-simulator.

The frame-count rule (``simulator.micro.draw.FRAME_RULE``): the GIF has one title frame, then
one frame per cycle, and the cycles are the fold model's compute cycles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from architectures.systolic import fold_plan
from simulator.cli import main
from simulator.micro import random_operands, simulate_gemm
from simulator.micro.draw import (MAX_FRAMES, TITLE_FRAME, TITLE_FRAMES, bottom_labels, frame_name,
                                  write_animation, write_heatmaps)
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
    # the title frame sorts first; cycle_00001.png is "cycle 1/N", as the frames and --text count
    assert frames == [TITLE_FRAME] + ["cycle_%05d.png" % t for t in range(1, cycles + 1)]
    assert [frame_name(n) for n in range(cycles + 1)] == frames
    assert (out / "utilization.png").stat().st_size > 0


def test_write_animation_returns_every_file_and_clears_stale_frames(tmp_path):
    gemm = GemmShape(3, 2, 3)
    A, B = random_operands(gemm)
    (tmp_path / "frames").mkdir()
    for stale in ("cycle_09999.png", "title.png", "cycle_00000_title.png"):
        (tmp_path / "frames" / stale).write_bytes(b"old")
    (tmp_path / "frames" / "notes.txt").write_text("mine")  # not a frame: never touched
    run = simulate_gemm(A, B, 4, 4, "is", record=True)
    files = write_animation(run, tmp_path)
    assert len(files) == 1 + run.cycles + 2  # PNG frames, the GIF, the heat maps
    assert not (tmp_path / "frames" / "cycle_09999.png").exists()
    assert not (tmp_path / "frames" / "title.png").exists()
    assert (tmp_path / "frames" / "notes.txt").read_text() == "mine"
    with Image.open(tmp_path / "animation.gif") as gif:
        assert gif.n_frames == 1 + run.cycles


def test_the_gif_streamed_frame_by_frame_shows_every_png_frame(tmp_path):
    """The GIF is written one frame at a time (cropped to what changed); composited, each of its
    frames is the PNG frame of the same cycle (up to the per-frame palette)."""
    gemm = GemmShape(4, 8, 4)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 4, 4, "ws", record=True)
    write_animation(run, tmp_path, frame_ms=120, title_ms=900)
    with Image.open(tmp_path / "animation.gif") as gif:
        assert gif.n_frames == 1 + run.cycles
        for n in (0, 1, 5, run.cycles // 2, run.cycles):
            gif.seek(n)
            assert gif.info["duration"] == (900 if n == 0 else 120)
            shown = np.asarray(gif.convert("RGB"), dtype=int)
            with Image.open(tmp_path / "frames" / frame_name(n)) as png:
                drawn = np.asarray(png.convert("RGB"), dtype=int)
            assert shown.shape == drawn.shape and np.abs(shown - drawn).max() <= 8


def test_labels_below_a_ws_array_are_running_partial_sums_then_the_final_outputs():
    """Tutorial 01 on ws folds K=27 four times: the last fold's outputs are A @ B (not that
    fold's partial sum), the other folds' partial sums the running sums over k so far."""
    from simulator.micro.frame import _edges

    gemm = GemmShape(16, 27, 8)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 8, 8, "ws", record=True)
    assert len(run.folds) == 4 and [f.partial for f in run.folds] == [True, True, True, False]
    product = A @ B
    seen = {False: set(), True: set()}
    for t in range(run.cycles):
        f = run.folds[int(run.states.fold[t])]
        _, _, bottom = _edges(run, t)
        for j, label in enumerate(bottom_labels(run, t)):
            if label is None:
                assert bottom[j] == ""
                continue
            m, n, value, partial = label
            k_end = f.row_offset + f.used_rows
            assert partial == f.partial
            expected = product[m, n] if not partial else A[m, :k_end] @ B[:k_end, n]
            assert value == expected
            assert bottom[j] == f"v {'psum ' if partial else ''}O{m},{n}={expected:g}"
            seen[partial].add((m, n))
    assert len(seen[False]) == len(seen[True]) == gemm.M * gemm.N  # every output, once per K-fold
    # the case the audit found: in cycle 136 (fold 4, 0-based t = 135) O6,0 leaves as 35 with seed 0
    (m, n, value, partial) = next(l for l in bottom_labels(run, 135) if l and l[:2] == (6, 0))
    assert not partial and value == product[6, 0]


def test_heatmaps_of_many_folds(tmp_path):
    gemm = GemmShape(9, 3, 9)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 2, 2, "os")  # 25 folds; no recording needed for heat maps
    path = write_heatmaps(run, tmp_path / "u.png")
    with Image.open(path) as img:
        assert img.size[0] > 500


def test_heatmaps_name_the_rows_and_columns():
    from simulator.micro.heatmaps import heatmap_figure

    gemm = GemmShape(20, 3, 12)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 12, 6, "os")
    ax = heatmap_figure(run).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["r0", "r4", "r8", "r11"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"c{j}" for j in range(6)]


def test_text_view_prints_every_cycle_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["animate", "--gemm", "4x8x4", "--array", "4x4", "--dataflow", "ws", "--text"]) == 0
    out = capsys.readouterr().out
    for t in range(1, 29):
        assert f"cycle {t}/28 " in out
    assert "cycles per fold = 2R + C + M - 2 = 2x4 + 4 + 4 - 2 = 14" in out
    assert "wB3,0" in out  # cycle 1: the weight row for PE row 3 enters at the top
    assert "*A0,0·B0,0" in out  # cycle 5: the first MAC
    A, B = random_operands(GemmShape(4, 8, 4))
    first = A[0, :4] @ B[:4, 0]
    assert (f"partial sum (running sum over k 0..3 of 8; this fold adds k 0..3) leaves to the ofmap "
            f"buffer: O0,0={first:g}") in out
    assert f"output leaves the array: O0,0={(A @ B)[0, 0]:g}" in out
    assert "checked: 28 simulated cycles = the fold model's 28" in out
    assert not (tmp_path / "results").exists()


def test_wide_arrays_get_one_character_per_pe(capsys):
    assert main(["animate", "--gemm", "3x2x12", "--array", "2x12", "--dataflow", "os", "--text"]) == 0
    out = capsys.readouterr().out
    assert "r0  *" in out and "A0,0·B0,0" not in out
    # os: '.' still accumulating, 'o' complete (K = 2: PE (0, 0) is done after cycle 2)
    assert "r0  o*" in out and "r0  .*" not in out


def test_os_text_view_tells_partial_from_complete_outputs_and_the_uncounted_drain(capsys):
    assert main(["animate", "--gemm", "4x8x4", "--array", "4x4", "--dataflow", "os", "--text"]) == 0
    out = capsys.readouterr().out
    assert ". output accumulating   o output complete" in out
    assert "oO0,0 8/8" in out and ".O0,0 4/8" not in out and "*A0,4·B4,0" in out
    assert "the last fold's drain is not counted (SCALE-Sim's convention)" in out


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


def test_a_pe_that_is_not_one_mac_per_cycle_is_refused_with_both_cycle_counts(tmp_path, capsys):
    exp = tmp_path / "mix.yaml"
    exp.write_text(TUTORIAL_01.read_text().split("sweep:")[0]
                   .replace("pe: {precision: int8}", "pe: {kind: mixpe, lanes: 2}")
                   .replace("  gemm: {M: 16, K: 27, N: 8}        # (M x K) @ (K x N)",
                            "  gemm: {M: 16, K: 27, N: 8}\n  precision: {weights: int4, group_size: 9}"))
    out = tmp_path / "run"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    import json

    run_cycles = int(json.loads((out / "results.json").read_text())["metrics"]["cycles"])
    assert run_cycles == 62  # 2 folds of ceil(27/2) + 14 steps + 3 dequantizations
    assert main(["animate", str(exp), "--text"]) == 2
    err = capsys.readouterr().err
    line = next(l for l in (exp.read_text().splitlines()) if "kind: mixpe" in l)
    lineno = exp.read_text().splitlines().index(line) + 1
    assert f"{exp}:{lineno}: architecture.pe.kind:" in err and "'mixpe' PE does 2 elements of K per step" in err
    assert f"`tessera run` counts {run_cycles} cycles (os) where the animation would draw 82" in err
    assert "Traceback" not in err
    tile = tmp_path / "tile.yaml"  # BitMoD's tile model: no fill or drain to draw
    tile.write_text(TUTORIAL_01.read_text().split("sweep:")[0]
                    .replace("pe: {precision: int8}", "pe: {precision: int8}\n  compute_model: tile"))
    assert main(["animate", str(tile), "--text"]) == 2
    err = capsys.readouterr().err
    assert "architecture.compute_model:" in err and "(54 cycles in `tessera run`, 82 in the animation)" in err


def test_out_must_be_a_writable_folder_and_is_checked_before_simulating(tmp_path, capsys, monkeypatch):
    import simulator.micro as micro

    def never(*a, **k):
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(micro, "simulate_gemm", never)
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out, message in ((afile, "is a file; give a folder"), (afile / "sub", "'afile' is a file")):
        assert main(["animate", "--gemm", "4x8x4", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and message in err.replace(str(tmp_path) + "/", "") and "Traceback" not in err
    (tmp_path / "out" / "animation.gif").mkdir(parents=True)
    assert main(["animate", "--gemm", "4x8x4", "--out", str(tmp_path / "out")]) == 2
    assert "animation.gif' is a folder" in capsys.readouterr().err
    assert afile.read_text() == "mine"


def test_no_png_removes_the_frames_of_an_earlier_run(tmp_path):
    out = tmp_path / "a"
    assert main(["animate", "--gemm", "4x8x4", "--dataflow", "ws", "--out", str(out)]) == 0
    assert len(list((out / "frames").glob("cycle_*.png"))) == 29
    assert main(["animate", "--gemm", "4x4x4", "--dataflow", "os", "--out", str(out), "--no-png"]) == 0
    assert not (out / "frames").exists()  # only stale frames were in it
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == 1 + 10  # 4 + 4 + 4 - 2


def test_heatmaps_alone_have_no_frame_limit(tmp_path, capsys):
    out = tmp_path / "h"
    argv = ["animate", "--gemm", "64x300x64", "--array", "8x8", "--out", str(out)]
    assert main(argv) == 2
    assert "--heatmap for the utilization heat maps alone" in capsys.readouterr().err
    assert main([*argv, "--heatmap"]) == 0
    text = capsys.readouterr().out
    assert "fold model: 20,096 cycles; simulated: 20,096 cycles" in text  # 64 folds of 300 + 14
    assert sorted(p.name for p in out.iterdir()) == ["utilization.png"]
    assert main([*argv, "--heatmap", "--text"]) == 2
    assert "leave out --text" in capsys.readouterr().err


def test_an_experiment_that_is_not_a_gemm_exits_2(tmp_path, capsys):
    exp = tmp_path / "cnn.yaml"
    exp.write_text("name: cnn\narchitecture: {preset: scalesim_32x32}\nworkload: {model: resnet18}\n")
    assert main(["animate", str(exp)]) == 2
    err = capsys.readouterr().err
    assert f"{exp}" in err and "draws a single GEMM" in err and "resnet18" in err
    assert main(["animate", str(exp), "--gemm", "4x4x4"]) == 2
    assert "not both" in capsys.readouterr().err
