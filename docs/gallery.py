"""Regenerate the documentation gallery from real runs: ``python docs/gallery.py``.

Every figure of ``docs/gallery.md`` comes from one entry of ``ENTRIES`` below: a gantk
command line (run with this Python, at a small size) and the files of its output folder to
show. The script runs the commands in a temporary folder, shrinks the PNGs (at most
``MAX_WIDTH`` pixels wide) into ``docs/gallery/`` and rewrites ``docs/gallery.md``, so the
page always shows what the code draws today. Adding a figure is one ``Entry(...)`` line.

Usage::

    python docs/gallery.py                 # every entry (about 4 CPU-minutes)
    python docs/gallery.py --only digits   # some entries; the others keep their images
    python docs/gallery.py --list          # names and commands

In a command, ``{out}`` is the entry's own output folder and ``{work}`` the temporary folder
that holds every entry's output folder (``{work}/NAME``), so a later entry can read an earlier
one's run (e.g. the snapshot grid of the main job).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

from PIL import Image

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
IMAGES = DOCS / "gallery"
PAGE = DOCS / "gallery.md"
MAX_WIDTH = 720


@dataclasses.dataclass(frozen=True)
class Entry:
    """One gallery item: a gantk command and the output files (globs) it should show.

    Attributes:
        name: a short identifier, used in the image file names and by ``--only``.
        section: heading under which the entry appears on the page.
        title: the entry's title.
        caption: what the figure shows (Markdown).
        argv: arguments after ``python`` (e.g. ``["-m", "gantk.run", ...]``), with the
            ``{out}`` and ``{work}`` placeholders.
        outputs: globs relative to ``{out}``; the matched PNGs are shown in this order
            (sorted within one glob).
    """

    name: str
    section: str
    title: str
    caption: str
    argv: tuple[str, ...]
    outputs: tuple[str, ...]


def run(*args: str) -> tuple[str, ...]:
    """``python -m gantk.run ... --out {out} --name run``: a run folder at ``{out}/run``."""
    return ("-m", "gantk.run", *args, "--out", "{out}", "--name", "run", "--no-progress")


def figures(command: str, *args: str) -> tuple[str, ...]:
    """``python -m gantk.figures COMMAND ... --out {out}``."""
    return ("-m", "gantk.figures", command, *args, "--out", "{out}")


def field(kernel: str, title: str, caption: str) -> Entry:
    """A one-particle vector field (``gantk.figures vector-field``, IPM) of one kernel."""
    return Entry(f"field-{kernel}", "Vector fields", title, caption,
                 figures("vector-field", "--kernel", kernel, "--loss", "ipm", "--nx", "15",
                         "--ny", "8"),
                 ("*.png",))


ENTRIES: list[Entry] = [
    Entry("main-job", "Particle flows", "The main job: IPM, ReLU NTK, 8 Gaussians",
          "Fake particles (red) flow from N(0, I₂) to the 8-Gaussian target (blue) along "
          "\\(v = \\nabla f_\\tau\\), the MMD gradient flow with the ReLU NTK; the heatmap is "
          "\\(f_\\tau\\), arrows the velocity. 200 + 200 points, per-particle step 2 "
          "(eta/n = 400/200), 1000 steps.",
          run("--loss", "ipm", "--kernel", "relu", "--n-particles", "200", "--eta", "400",
              "--steps", "1000", "--log-every", "250"),
          ("run/figures/step_0.png", "run/figures/step_1000.png", "run/figures/metrics.png")),
    Entry("snapshots", "Particle flows", "Snapshots of the main job",
          "`python -m gantk.figures snapshots RUN_DIR` on the run above (`WORK/main-job/run`: "
          "`WORK` is the folder that holds each entry's `OUT`).",
          ("-m", "gantk.figures", "snapshots", "{work}/main-job/run", "--out",
           "{out}/snapshots.png"),
          ("snapshots.png",)),
    Entry("lsgan-nobias", "Particle flows", "LSGAN with the bias-free ReLU NTK collapses",
          "The bias-free ReLU NTK is positively homogeneous, so \\(f_\\tau(0) = 0\\) and the "
          "origin minimises the LSGAN generator loss \\(c(f) = f^2\\): the whole fake cloud "
          "is pulled to it (see [Findings](findings.md)). 200 + 200 points, 100 steps.",
          run("--loss", "lsgan", "--kernel", "relu-nobias", "--n-particles", "200", "--eta",
              "400", "--steps", "100", "--log-every", "100", "--metrics", "energy,mmd"),
          ("run/figures/step_100.png",)),
    Entry("digits", "Particle flows", "Digits: particles become images",
          "IPM flow on scikit-learn's 8×8 digits (64-d), ReLU NTK, \\(\\tau = 1000\\) (the "
          "GAN(TK)² digits setting at 256 particles instead of 1024, same per-particle step).",
          run("--data", "digits", "--loss", "ipm", "--kernel", "relu", "--time", "1000",
              "--n-particles", "256", "--eta", "25", "--steps", "400", "--log-every", "400"),
          ("run/figures/step_0.png", "run/figures/step_400.png")),
    field("relu", "One particle against one target: ReLU",
          "Velocity of a fake particle at each grid point when the only real point is (1, 0) "
          "(Franceschi et al., Figures 6–7), IPM loss."),
    field("relu-nobias", "Bias-free ReLU",
          "The same field for the bias-free ReLU NTK: positively homogeneous, so the speed "
          "grows with the distance from the origin, where it vanishes."),
    field("rbf", "RBF (NNGP)",
          "The same field for GAN(TK)²'s RBF network: attraction towards the real point, "
          "fading with the distance from it (a local kernel)."),
    Entry("adequacy-1d", "Finite vs infinite width", "Adequacy in 1-D (Figure 1)",
          "\\(c_f\\) of finite ReLU discriminators trained by SGD against the infinite-width "
          "closed form, widths 64 and 512, 4 networks each (the README's table uses 100).",
          figures("adequacy-1d", "--loss", "ipm", "--widths", "64", "512", "--seeds", "4"),
          ("*.png",)),
    Entry("adequacy-2d", "Finite vs infinite width", "Adequacy in 2-D",
          "Heatmaps of \\(f\\) for a width-256 network and the infinite-width LSGAN solution.",
          figures("adequacy-2d", "--loss", "lsgan", "--n", "64", "--width", "256", "--seeds",
                  "2", "--resolution", "48"),
          ("*.png",)),
    Entry("pde-waveeq", "Video models", "PDE-driven disentanglement on WaveEq",
          "`gantk.models.pde` (Donà et al., ICLR 2021) trained for 300 steps of the small "
          "preset on WaveEq 32×32: ground truth rows, then predictions from 5 conditioning "
          "frames (the README reports the 28-minute run: MSE 0.0018 vs 0.0193 for "
          "copy-last over 40 predicted frames).",
          ("-m", "gantk.models.train", "--model", "pde", "--data", "waveeq", "--steps", "300",
           "--strip-every", "300", "--out", "{out}", "--name", "run", "--no-progress"),
          ("run/strips/*.png",)),
    Entry("dirac-stability", "Game dynamics", "Dirac-GAN: where gradient descent converges",
          "Spectral radius of the simultaneous-GD update map of the Dirac-GAN (Mescheder et "
          "al., ICML 2018) with an R1 gradient penalty, over the step size h and the penalty "
          "weight γ (`gantk.analysis.dirac.stability_region`); between the two contours ρ = 1 the "
          "iteration converges. Without the penalty (γ = 0) it never does.",
          ("-c", "import sys, numpy as np, matplotlib.pyplot as plt; "
           "from gantk.analysis import dirac; "
           "hs = np.linspace(0.01, 2, 120); gs = np.linspace(0, 2, 100); "
           "rho = np.asarray(dirac.stability_region('gan_gp', hs, gs)); "
           "fig, ax = plt.subplots(figsize=(5, 4)); "
           "im = ax.pcolormesh(hs, gs, rho, shading='auto', cmap='viridis', vmin=0.5, vmax=1.5); "
           "ax.contour(hs, gs, rho, levels=[1.0], colors='w'); "
           "ax.set_xlabel('step size h'); ax.set_ylabel('gradient penalty weight γ'); "
           "ax.set_title('Dirac-GAN + R1, simultaneous GD: ρ'); fig.colorbar(im); "
           "fig.savefig(sys.argv[1] + '/stability.png', dpi=100, bbox_inches='tight')",
           "{out}"),
          ("stability.png",)),
]


def _shrink(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Copy a PNG at most ``MAX_WIDTH`` wide (RGB; a palette PNG bands the heatmaps)."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > MAX_WIDTH:
            im = im.resize((MAX_WIDTH, round(im.height * MAX_WIDTH / im.width)), Image.LANCZOS)
        im.save(dst, optimize=True)


def _shown(entry: Entry, out: str = "OUT", work: str = "WORK") -> list[str]:
    return [a.format(out=out, work=work) for a in entry.argv]


def _images(entry: Entry) -> list[pathlib.Path]:
    return sorted(IMAGES.glob(f"{entry.name}--*.png"))


def generate(entry: Entry, work: pathlib.Path) -> float:
    """Run one entry's command and refresh its images; returns the wall time in seconds."""
    out = work / entry.name
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, *_shown(entry, str(out), str(work))]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=f"{ROOT}{os.pathsep}"
               + os.environ.get("PYTHONPATH", ""))
    print(f"[{entry.name}] {shlex.join(argv[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"[{entry.name}] failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    found = [p for pattern in entry.outputs for p in sorted(glob.glob(str(out / pattern)))]
    pngs = [pathlib.Path(p) for p in dict.fromkeys(found) if p.endswith(".png")]
    if not pngs:
        raise SystemExit(f"[{entry.name}] wrote no file matching {entry.outputs} in {out}")
    for old in _images(entry):
        old.unlink()
    for i, path in enumerate(pngs):
        _shrink(path, IMAGES / f"{entry.name}--{i}-{path.stem}.png")
    print(f"[{entry.name}] {len(pngs)} image(s), {elapsed:.0f} s", flush=True)
    return elapsed


def write_page() -> None:
    """Rewrite ``docs/gallery.md`` from ``ENTRIES`` and the images present."""
    lines = [
        "# Gallery",
        "",
        "<!-- Generated by docs/gallery.py: edit ENTRIES there, not this file. -->",
        "",
        "Every figure here comes from a real gantk run at a small size, regenerated by",
        "`python docs/gallery.py` (about 4 minutes of CPU time in all; 18 minutes of wall time",
        "measured on a 2-core machine shared with other jobs, load average 21). The command",
        "under each figure reproduces it (`OUT` is any output folder). Larger runs and their",
        "numbers are in [Findings](findings.md) and [Performance](performance.md).",
        "",
    ]
    section = None
    for entry in ENTRIES:
        images = _images(entry)
        if not images:
            continue
        if entry.section != section:
            section = entry.section
            lines += [f"## {section}", ""]
        lines += [f"### {entry.title}", "", entry.caption, "",
                  "```bash", "python " + shlex.join(_shown(entry)), "```", ""]
        shown = [f"![{entry.title} ({img.stem.split('--', 1)[1]})](gallery/{img.name})"
                 "{ loading=lazy }" for img in images]
        if len(shown) == 1:
            lines += [shown[0], ""]
        else:  # one paragraph per image: each is a cell of the CSS grid
            lines += ['<div class="gallery" markdown>', ""]
            lines += [line for img in shown for line in (img, "")]
            lines += ["</div>", ""]
    PAGE.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Command line: run the entries (all, or ``--only``), then rewrite the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="entries to regenerate")
    parser.add_argument("--list", action="store_true", help="list entries and exit")
    parser.add_argument("--page-only", action="store_true",
                        help="only rewrite gallery.md from the images present")
    args = parser.parse_args(argv)
    names = [e.name for e in ENTRIES]
    if args.list:
        for e in ENTRIES:
            print(f"{e.name:20s} python {shlex.join(_shown(e))}")
        return 0
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        print(f"gallery.py: unknown entry {unknown[0]!r}; valid: {', '.join(names)}")
        return 2
    IMAGES.mkdir(exist_ok=True)
    if not args.page_only:
        chosen = [e for e in ENTRIES if not args.only or e.name in args.only]
        total = 0.0
        with tempfile.TemporaryDirectory(prefix="gantk-gallery-") as tmp:
            for entry in chosen:
                total += generate(entry, pathlib.Path(tmp))
        print(f"{len(chosen)} entries in {total:.0f} s")
    write_page()
    size = sum(p.stat().st_size for p in IMAGES.glob("*.png"))
    print(f"docs/gallery/: {size / 2**20:.2f} MiB; page: {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
