"""Report files of `edge-restore-eval`: report.md, results.json, a quality-vs-speed plot, crops.

Everything here reads the plain results dictionary built by :mod:`train.evaluate`, so a report can
be re-rendered from a saved results.json (without the crop figures, which need pixels).
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

PLOT_NAME = "quality_vs_speed.png"
PERCEPTION_PLOT_NAME = "perception_vs_distortion.png"
RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"
HTML_NAME = "report.html"
CROP_SIDE = 128
#: Every file a report writes: a report folder holding only these can be overwritten (--overwrite).
REPORT_FILES = (REPORT_NAME, HTML_NAME, RESULTS_NAME, PLOT_NAME, PERCEPTION_PLOT_NAME)
CROPS_PATTERN = "crops_*.png"


class ReportFolderError(ValueError):
    """The report folder cannot be used: not empty without --overwrite, or not only a report's files."""


def report_files_in(out_dir: str | Path, overwrite: bool) -> list[Path]:
    """The files of a previous report in `out_dir`, to remove before writing the new one.

    A missing or empty folder gives []. A non-empty one is refused unless `overwrite`; even then
    anything that a report does not write (other files, sub-folders) is refused rather than
    deleted, so a mistyped --out never costs someone's files and no stale file mixes in.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportFolderError(f"--out {out} is a file, not a folder")
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if not entries:
        return []
    if not overwrite:
        raise ReportFolderError(f"report folder {out} is not empty; give a new folder, or --overwrite to replace "
                                "the report in it")
    foreign = [p for p in entries if not (p.is_file() and (p.name in REPORT_FILES or p.match(CROPS_PATTERN)))]
    if foreign:
        raise ReportFolderError(f"report folder {out} holds {foreign[0].name!r}, which is not a report file; "
                                "--overwrite only replaces a previous report (give a new or empty folder)")
    return entries


def slug(text: str) -> str:
    """A file-name-safe version of a degradation spec ('awgn:25' -> 'awgn_25')."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "x"


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (a perfect reconstruction has infinite PSNR)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(_finite(results), indent=2, allow_nan=False) + "\n")


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "inf" if value == float("inf") else "-"
    return f"{value:.{digits}f}"


def _fmt_time(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def render_markdown(results: dict[str, Any], figures: dict[str, str]) -> str:
    """The report as Markdown: settings, then per degradation a summary and a per-image table."""
    cfg = results["config"]
    lines = [
        "# edge-restore evaluation",
        "",
        f"- Clean images: `{cfg['clean_dir']}`, {len(results['images'])} image(s)"
        + (f", centre-cropped to at most {cfg['crop']}x{cfg['crop']}" if cfg.get("crop") else "")
        + f": {', '.join(results['images'])}",
        f"- Seed {cfg['seed']}; command: `{cfg['command']}`",
        "- Every clean image is degraded **once** per degradation with a seeded RNG, clipped and rounded to 8 bits "
        "(as real photos arrive); every method and model sees the identical 8-bit input "
        "(`input_sha256` in results.json).",
        "- Outputs are clipped and rounded to 8 bits before scoring. PSNR in dB (peak 1.0, "
        "`edge_runtime.metrics.psnr`); SSIM from `edge_runtime.metrics.ssim` "
        "(Wang et al.: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, data range 1, per channel then averaged; "
        "equal to scikit-image's `structural_similarity` with `gaussian_weights=True, use_sample_covariance=False`). "
        "Means are over images.",
        "- Classic methods get their fairest setting: the *true* noise sigma (0-255 scale, including the "
        "8-bit rounding noise: sqrt(sigma^2 + 1/12)) and, for deconvolution, the *true* blur kernel. "
        "Learned models get nothing but the degraded image.",
        f"- Time: wall-clock seconds of the method call per megapixel after an untimed warm-up, on "
        f"{cfg['machine']}, "
        + (f"{cfg['threads']} thread(s) for OpenCV/torch/runtime" if cfg.get("threads") else "libraries' default threads")
        + " (scikit-image, SciPy and numpy code here is single-threaded). Indicative only when the machine is shared.",
        "",
    ]
    for spec, deg in results["degradations"].items():
        methods = deg["methods"]
        lines += [f"## `{spec}`: {deg['description']}", ""]
        side = [f"`{m}`: {deg['side_info'][m]}" for m in methods]
        lines += ["Side information: " + "; ".join(side) + ".", ""]
        if deg["skipped"]:
            lines += ["Skipped: " + "; ".join(f"`{m}` ({why})" for m, why in deg["skipped"].items()) + ".", ""]
        lines += ["| method | mean PSNR (dB) | mean SSIM | s / MP |", "|---|---:|---:|---:|"]
        for m in methods:
            mean = deg["mean"][m]
            lines.append(f"| {m} | {_fmt(mean['psnr'], 2)} | {_fmt(mean['ssim'], 4)} | {_fmt_time(mean['sec_per_mp'])} |")
        lines += ["", "Per image, PSNR / SSIM:", ""]
        has_kernel = any(row.get("kernel") for row in deg["per_image"])
        head = ["image"] + (["kernel"] if has_kernel else []) + ["sigma given"] + methods
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in deg["per_image"]:
            cells = [row["image"]] + ([row.get("kernel") or "-"] if has_kernel else []) + [f"{row['sigma_given']:.2f}"]
            cells += [f"{_fmt(row['psnr'][m], 2)} / {_fmt(row['ssim'][m], 4)}" for m in methods]
            lines.append("| " + " | ".join(cells) + " |")
        lines += perceptual_lines(deg)
        if spec in figures.get("crops", {}):
            lines += ["", f"![before/after crops for {spec}]({figures['crops'][spec]})",
                      "", f"Crops (up to {CROP_SIDE}x{CROP_SIDE}, centre of `{results['images'][0]}`): clean | degraded | "
                      "each method; titles give the whole image's PSNR."]
        lines.append("")
    if figures.get("plot"):
        lines += ["## Quality vs speed", "", f"![quality vs speed]({figures['plot']})", ""]
    if figures.get("perception_plot"):
        lines += ["## Perception vs distortion", "", f"![NIQE vs PSNR]({figures['perception_plot']})", ""]
    return "\n".join(lines)


PERCEPTUAL_LABELS = {"niqe": "NIQE", "brisque": "BRISQUE", "lpips": "LPIPS"}


def perceptual_lines(deg: dict[str, Any]) -> list[str]:
    """Markdown of the --perceptual scores of one degradation: means, then per image (empty without them)."""
    metrics = deg.get("perceptual") or []
    if not metrics:
        return []
    labels = [PERCEPTUAL_LABELS[k] for k in metrics]
    lines = ["", "Perceptual scores (lower is better): NIQE and BRISQUE need no reference (LIVE models, "
             "`train.nr_metrics`; NIQE needs two 96x96 blocks, '-' where an image is smaller)"
             + (", LPIPS against the clean image" if "lpips" in metrics else f"; LPIPS skipped: {deg.get('lpips_skipped')}")
             + ".", "", "| method | " + " | ".join(f"mean {x}" for x in labels) + " |", "|---|" + "---:|" * len(labels)]
    clean = deg.get("clean_mean") or {}
    lines.append("| *clean reference* | " + " | ".join(_fmt(clean.get(k), 3) for k in metrics) + " |")
    for m in deg["methods"]:
        lines.append(f"| {m} | " + " | ".join(_fmt(deg["mean"][m].get(k), 3) for k in metrics) + " |")
    lines += ["", "Per image, " + " / ".join(labels) + ":", "",
              "| image | *clean reference* | " + " | ".join(deg["methods"]) + " |",
              "|" + "---|" * (len(deg["methods"]) + 2)]
    for row in deg["per_image"]:
        ref = row.get("clean_scores") or {}
        cells = [" / ".join(_fmt(ref.get(k), 2) for k in metrics)]
        cells += [" / ".join(_fmt(row[k][m], 2) for k in metrics) for m in deg["methods"]]
        lines.append(f"| {row['image']} | " + " | ".join(cells) + " |")
    return lines


def plot_perception_vs_distortion(results: dict[str, Any], path: Path) -> None:
    """One panel per degradation: mean NIQE against mean PSNR (the perception-distortion plane)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    degs = [(spec, deg) for spec, deg in results["degradations"].items() if deg.get("perceptual")]
    fig, axes = plt.subplots(1, len(degs), figsize=(5.0 * len(degs), 4.2), squeeze=False)
    for ax, (spec, deg) in zip(axes[0], degs):
        for m in deg["methods"]:
            mean = deg["mean"][m]
            if mean.get("niqe") is None or mean["psnr"] is None or not math.isfinite(mean["psnr"]):
                continue
            ax.scatter([mean["psnr"]], [mean["niqe"]], s=30)
            ax.annotate(m, (mean["psnr"], mean["niqe"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ref = (deg.get("clean_mean") or {}).get("niqe")
        if ref is not None:
            ax.axhline(ref, ls=":", color="gray", lw=1)
            ax.annotate("clean reference", (0.02, ref), xycoords=("axes fraction", "data"), fontsize=8, color="gray",
                        va="bottom")
        ax.set_xlabel("mean PSNR (dB, higher is better)")
        ax.set_ylabel("mean NIQE (lower is better)")
        ax.set_title(spec, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_quality_vs_speed(results: dict[str, Any], path: Path) -> None:
    """One panel per degradation: mean PSNR against seconds per megapixel (log scale).

    Each method keeps one colour and marker in every panel and is named once in a shared legend:
    methods of similar speed and quality would bury text labels under each other. The degraded
    input ('identity') is drawn as a dashed horizontal line, not a point: it costs nothing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter

    degs = list(results["degradations"].items())
    methods = list(dict.fromkeys(m for _, deg in degs for m in deg["methods"] if m != "identity"))
    colours = plt.get_cmap("tab10").colors
    markers = "osD^vP*Xhp<>"
    style = {m: (colours[i % len(colours)], markers[i % len(markers)]) for i, m in enumerate(methods)}
    ncols = min(3, len(degs))
    nrows = math.ceil(len(degs) / ncols)
    legend_columns = 3
    legend_rows = math.ceil(len(methods) / legend_columns)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 4.0 * nrows + 0.25 * legend_rows), squeeze=False)
    handles: dict[str, Any] = {}
    for ax, (spec, deg) in zip(axes.flat, degs):
        for m in deg["methods"]:
            mean = deg["mean"][m]
            if mean["psnr"] is None or not math.isfinite(mean["psnr"]):
                continue
            if m == "identity":
                ax.axhline(mean["psnr"], ls="--", color="gray", lw=1)
                ax.annotate("degraded input", (0.02, mean["psnr"]), xycoords=("axes fraction", "data"),
                            fontsize=8, color="gray", va="bottom")
                continue
            t = max(mean["sec_per_mp"] or 0.0, 1e-4)
            colour, marker = style[m]
            handles[m] = ax.scatter([t], [mean["psnr"]], s=36, color=colour, marker=marker, alpha=0.85)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.25, y=0.1)
        ax.set_xlabel("seconds per megapixel (log)")
        ax.set_ylabel("mean PSNR (dB)")
        ax.set_title(spec, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(degs):]:
        ax.axis("off")
    fig.suptitle("Quality vs speed (up and left is better)", fontsize=11)
    legend_height = (0.2 * legend_rows + 0.1) / fig.get_figheight()
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(legend_columns, len(handles)), fontsize=8,
                   frameon=False)
    fig.tight_layout(rect=(0, legend_height if handles else 0, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(side, h), min(side, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y : y + ch, x : x + cw]


def plot_crops(example: dict[str, Any], title: str, path: Path, side: int = CROP_SIDE) -> None:
    """Side-by-side crops: clean | degraded | each method; each title gives the whole image's PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("clean", example["clean"], None), ("degraded", example["degraded"], example["psnr"].get("identity"))]
    panels += [(m, out, example["psnr"].get(m)) for m, out in example["outputs"].items() if m != "identity"]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6), squeeze=False)
    for ax, (name, img, score) in zip(axes[0], panels):
        crop = np.clip(centre_crop(img, side), 0.0, 1.0)
        ax.imshow(crop[..., 0] if crop.shape[2] == 1 else crop, cmap="gray" if crop.shape[2] == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name if score is None else f"{name}\n{score:.2f} dB", fontsize=8)  # whole-image PSNR
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


HTML_STYLE = """body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
  line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; }
th { background: #f2f2f2; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f4f4f4; padding: 0 0.2rem; }
img { max-width: 100%; }"""
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")


def _inline(text: str) -> str:
    """HTML of one line of the report's Markdown: `code`, **bold** and *italic*, everything escaped."""
    parts = text.split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inside backticks: literal
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part)
        part = re.sub(r"\*\*(\S.*?\S|\S)\*\*", r"<strong>\1</strong>", part)
        out.append(re.sub(r"\*(\S.*?\S|\S)\*", r"<em>\1</em>", part))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> list[str]:
    """A Markdown table (header, |---|---:| rule, rows) as HTML; '---:' columns are right-aligned."""
    numeric = [c.endswith(":") for c in _cells(lines[1])]

    def row(cells: list[str], tag: str) -> str:
        attrs = [' class="num"' if i < len(numeric) and numeric[i] else "" for i in range(len(cells))]
        return "<tr>" + "".join(f"<{tag}{a}>{_inline(c)}</{tag}>" for a, c in zip(attrs, cells)) + "</tr>"

    return ["<table>", row(_cells(lines[0]), "th"), *(row(_cells(ln), "td") for ln in lines[2:]), "</table>"]


def markdown_to_html(markdown: str, title: str = "edge-restore evaluation") -> str:
    """A self-contained HTML page of the report's Markdown.

    Handles exactly what render_markdown writes (headings, bullet lists, tables, images on their
    own line, paragraphs, inline code and emphasis): no Markdown package is needed, and images
    stay relative links to the files beside the report.
    """
    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            body += _table(lines[i:j])
            i = j
        elif line.startswith("- "):
            body.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                body.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append("</ul>")
        elif match := _IMAGE.match(line.strip()):
            src, alt = html.escape(match["src"], quote=True), html.escape(match["alt"], quote=True)
            body.append(f'<p><img src="{src}" alt="{alt}"></p>')
            i += 1
        else:
            body.append(f"<p>{_inline(line)}</p>")
            i += 1
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>{html.escape(title)}</title>", f"<style>\n{HTML_STYLE}\n</style>", "</head>", "<body>",
                      *body, "</body>", "</html>", ""])


def write_report(results: dict[str, Any], examples: dict[str, dict[str, Any]], out_dir: str | Path) -> dict[str, Any]:
    """Write report.md (and the same as report.html), results.json, the quality-vs-speed plot and
    one crops PNG per degradation.

    `examples` maps a degradation spec to {"image", "clean", "degraded", "outputs": {method: img},
    "psnr": {method: dB}} for the first image. Returns the names of the files written (relative to
    `out_dir`), which are also stored in results.json under "files".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"plot": PLOT_NAME, "crops": {}}
    plot_quality_vs_speed(results, out / PLOT_NAME)
    if any(deg.get("perceptual") for deg in results["degradations"].values()):
        plot_perception_vs_distortion(results, out / PERCEPTION_PLOT_NAME)
        figures["perception_plot"] = PERCEPTION_PLOT_NAME
    for spec, example in examples.items():
        name = f"crops_{slug(spec)}.png"
        h, w = centre_crop(example["clean"], CROP_SIDE).shape[:2]
        plot_crops(example, f"{spec}: {example['image']}, {w}x{h} centre crop (PSNR of the whole image)", out / name)
        figures["crops"][spec] = name
    files = {"report": REPORT_NAME, "html": HTML_NAME, "results": RESULTS_NAME, **figures}
    results = {**results, "files": files}
    markdown = render_markdown(results, figures)
    (out / REPORT_NAME).write_text(markdown, encoding="utf-8")
    (out / HTML_NAME).write_text(markdown_to_html(markdown), encoding="utf-8")
    write_json(results, out / RESULTS_NAME)
    return files
