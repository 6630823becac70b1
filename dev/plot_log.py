#!/usr/bin/env python3
"""dev/plot_log.py -- loss curves (and evaluation accuracy) of training runs, as one PNG.

    dev/plot_log.py [NAME=]LOG... -o PNG [--smooth S] [--title TEXT]

Each LOG is a run's log.txt (gptc/checkpoint.h's format): "s:S trl:LOSS norm:NORM lr:LR" per step,
"s:S vl:LOSS" per validation, "s:S eval:ACC" per multiple-choice evaluation (acc_norm). The left
panel shows every run's training loss raw (thin) and smoothed (an exponential moving average with
weight S on the past, bias-corrected as Adam's moments are, so the curve starts at the first
loss), and its validation loss (markers); the right panel, when a log has eval lines, the
evaluation accuracy. Runs are overlaid in one colour each, named NAME (default: the folder of a
log.txt, else the file's name).

matplotlib from Debian (python3-matplotlib; dev/deps.sh test installs it), drawn off-screen (Agg).
Errors (a missing or unreadable log, a line that is not the format, nothing to plot) are one line
"error: ..." on stderr and exit status 1.
"""
import argparse
import os
import re
import sys

LINE = re.compile(r"^s:(\d+) (trl|vl|eval):(\S+)")


def die(msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(1)


def read_log(path):
    """{"trl": [(step, value)], "vl": [...], "eval": [...]} of one log.txt"""
    series = {"trl": [], "vl": [], "eval": []}
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        die("%s: cannot read (%s)" % (path, e))
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = LINE.match(line)
        if m is None:
            die("%s:%d: not a log line (s:STEP trl:|vl:|eval:VALUE): %.60r" % (path, n, line))
        try:
            value = float(m.group(3))
        except ValueError:
            die("%s:%d: %s value %.30r is not a number" % (path, n, m.group(2), m.group(3)))
        series[m.group(2)].append((int(m.group(1)), value))
    if not any(series.values()):
        die("%s: no steps, validations or evaluations in it" % path)
    return series


def smooth(values, weight):
    """bias-corrected exponential moving average: ema_t = w ema_{t-1} + (1-w) x_t, / (1 - w^t)"""
    out, ema = [], 0.0
    for t, x in enumerate(values, 1):
        ema = weight * ema + (1.0 - weight) * x
        out.append(ema / (1.0 - weight ** t))
    return out


def main():
    ap = argparse.ArgumentParser(description="loss curves of training runs (log.txt) as a PNG")
    ap.add_argument("logs", nargs="+", metavar="[NAME=]LOG")
    ap.add_argument("-o", "--output", required=True, metavar="PNG")
    ap.add_argument("--smooth", type=float, default=0.9, metavar="S",
                    help="EMA weight on the past for the smoothed train loss, in [0, 1)")
    ap.add_argument("--title", default=None)
    ap.error = lambda message: die(message)  # one "error:" line, exit 1, as every tool here
    args = ap.parse_args()
    if not 0.0 <= args.smooth < 1.0:
        die("--smooth %g: must be in [0, 1)" % args.smooth)
    if not args.output.endswith(".png"):
        die("-o %s: the output must be a .png file" % args.output)
    runs = []
    for spec in args.logs:
        name, sep, path = spec.partition("=")
        if not sep:  # a run's log.txt is named by its folder, another file by its own name
            stem, path = os.path.splitext(os.path.basename(spec))[0], spec
            name = os.path.basename(os.path.dirname(os.path.abspath(spec))) if stem == "log" else stem
        runs.append((name, read_log(path)))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have_eval = any(r["eval"] for _, r in runs)
    fig, axes = plt.subplots(1, 2 if have_eval else 1, figsize=(11 if have_eval else 7, 4.2), dpi=100)
    ax_loss = axes[0] if have_eval else axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, r) in enumerate(runs):
        c = colors[i % len(colors)]
        if r["trl"]:
            steps, losses = zip(*r["trl"])
            ax_loss.plot(steps, losses, color=c, alpha=0.25, linewidth=0.8)
            ax_loss.plot(steps, smooth(losses, args.smooth), color=c, linewidth=1.6, label=name + " train")
        if r["vl"]:
            steps, losses = zip(*r["vl"])
            ax_loss.plot(steps, losses, color=c, linestyle="--", marker="o", markersize=3.5, label=name + " val")
        if have_eval and r["eval"]:
            steps, acc = zip(*r["eval"])
            axes[1].plot(steps, acc, color=c, marker="o", markersize=3.5, label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (nats per token)")
    ax_loss.set_title("loss: raw and smoothed (EMA %.2f) train, val" % args.smooth, fontsize=10)
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    if have_eval:
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("accuracy (acc_norm)")
        axes[1].set_title("multiple-choice evaluation", fontsize=10)
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    try:
        fig.savefig(args.output)
    except OSError as e:
        die("-o %s: cannot write (%s)" % (args.output, e))
    print("wrote %s: %d run(s)" % (args.output, len(runs)))


if __name__ == "__main__":
    main()
