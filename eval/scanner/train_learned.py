"""Train the learned injection model (`src/conduit/scanning/learned.bin`) from the development
data only, and measure it by cross-validation first.

    .venv/bin/python eval/scanner/train_learned.py --cv        # 5-fold cross-validation, prints rates
    .venv/bin/python eval/scanner/train_learned.py --write     # train on all dev data, write the model

Examples: positives are the sentences of every dev poisoned item's target texts (`dev.json`,
`dev-*.json`) except the benign parts an attack is wrapped in (a short opening summary of what the
tool does, filler repeated across items such as "What to look up"); negatives are every sentence of
the dev harmless servers (`data/harmless/*.json` whose split is dev). Held-out files are never read.
The threshold is calibrated on out-of-fold scores of the harmless servers (grouped by server), so
that at most `--fp` of harmless tools score above it. Everything is seeded: the same data gives
the same model, byte for byte.

Results when the model was added (`--cv`, threshold at 1% of harmless tools out of fold):
- 5-fold cross-validation by item and by server: 86/213 poisoned items scored above the threshold
  by a model that never saw them, with 5/520 harmless tools; the model alone is no detector.
- Probes, what it adds to the rules: trained without `dev-3.json`, it caught 5 of the 20 items the
  rules of the time missed (8/28 -> 13/28); `dev-4.json` (24 items written after freezing a
  version trained on dev, dev-2, dev-3): rules 7/24, rules + model 9/24. It was then retrained
  with dev-4.
- `run.py`: heldout-blind 48/72 -> 53/72, heldout 7/8 -> 8/8, held-out harmless tools flagged
  10/580 -> 15/580 (limit 3%), dev harmless 0/520.
Word-only features did worse on the dev-3 probe (+3 instead of +5); scoring parameter
descriptions flagged 117 of Google Workspace's tools ("The user's Google email address").

Retrained on 2026-11-23 with dev-5 (the former blind set), dev-6 and dev-7, with word-group
features (`learned._CLASS_WORDS`, weight 3) and the parameter-description sentences that give an
order (`learned.scored_sentences`), which get a threshold of their own at `--param-fp` (0.5%):
- `--cv --exclude p7-` (317 items), at 1% of harmless tools: n-grams only 177/317; + word groups
  180/317; + word groups and parameter sentences 179/317 (7/520 harmless with both thresholds).
  At 2%: 192, 211 and 213. The groups help a little, not much.
- Trained without dev-7 and scored on it beside the rules: 27/32 (parameter sentences scored)
  against 29/32 without them, but the latter flagged 16/580 held-out harmless tools against 12,
  so parameter sentences were kept. `--fp 0.02` gave 30/32 with 19/580.
- Model on all dev but dev-8 (349 items): thresholds 0.843 and 0.766, 173/349 out of fold at 1%;
  with the rules it caught 9/16 of dev-8 (written afterwards) on first sight.
- Final model (all dev, 365 items): thresholds 0.755 and 0.719, 215/365 out of fold at 1% (6/520
  harmless tools); `run.py` dev 364/365, held-out 8/8, held-out harmless 13/580, dev harmless 0/520.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent.parent / "src"))

from conduit.scanning.checks import learned  # noqa: E402
from conduit.scanning.checks.base import Context  # noqa: E402
from conduit.scanning.checks.learned import (  # noqa: E402
    MODEL_PATH,
    UNSCORED_KINDS,
    Model,
    features,
    scored_sentences,
)
from conduit.scanning.inventory import Inventory, ServerInventory  # noqa: E402

POISONED = ROOT / "data" / "poisoned"
HARMLESS = ROOT / "data" / "harmless"
SKIPPED_KINDS = set(UNSCORED_KINDS) - set(learned.PARAM_KINDS)  # never scored (plus SKIP_EXTRA)
# Attacks a sentence alone cannot show: a parameter asking for data the tool has no use for ("The
# user's social security number") reads like an honest one ("The user's Google email address").
UNLEARNABLE = {"out-of-scope-param"}


@dataclass
class Unit:
    """What is scored together: a poisoned item's target, or one harmless tool (or a server's
    other texts). `examples` are the sentences trained on, `texts` all the texts scored."""

    group: str  # poisoned item id or harmless server
    key: str
    poisoned: bool
    texts: list[str]
    examples: list[str]
    param_texts: list[str] = field(default_factory=list)  # scored against the parameter threshold


def _surfaces(name: str, listing: dict) -> list:
    inventory = Inventory(target=name, kind="files", servers=[ServerInventory.from_listing(name, listing)])
    return [s for s in Context(inventory=inventory).surfaces() if s.kind not in SKIPPED_KINDS | SKIP_EXTRA]


SKIP_EXTRA: set[str] = set()


def dev_items() -> list[dict]:
    files = [POISONED / "dev.json", *sorted(POISONED.glob("dev-*.json"))]
    return [item for file in files for item in json.loads(file.read_text())["items"]]


def poisoned_units(items: list[dict]) -> list[Unit]:
    raw: list[tuple[dict, list[tuple[str, list[str]]]]] = []
    seen: Counter[str] = Counter()
    for item in items:
        target = item["target"]
        texts = []
        for surface in _surfaces(item["id"], item["listing"]):
            if surface.location == target or surface.location.startswith(target + "."):
                texts.append((surface.kind, scored_sentences(surface.kind, surface.normalized.text)))
        raw.append((item, texts))
        for sentence in {s for _kind, parts in texts for s in parts}:
            seen[sentence] += 1
    units = []
    for item, texts in raw:
        examples = []
        all_texts = [s for kind, parts in texts if kind not in learned.PARAM_KINDS for s in parts]
        param_texts = [s for kind, parts in texts if kind in learned.PARAM_KINDS for s in parts]
        if item["family"] in UNLEARNABLE:
            units.append(Unit(item["id"], item["id"], True, all_texts, [], param_texts))
            continue
        for kind, parts in texts:
            for i, sentence in enumerate(parts):
                if seen[sentence] > 1:
                    continue  # filler shared by several items ("What to look up")
                words = len(sentence.split())
                if i == 0 and words <= 8 and (len(parts) > 1 or kind.endswith(".description")):
                    continue  # the opening summary an attack is wrapped in ("Adds two numbers.")
                if words <= 4 and kind.startswith(("param.", "prompt.argument")):
                    continue  # "Text to translate"
                examples.append(sentence)
        units.append(Unit(item["id"], item["id"], True, all_texts, examples, param_texts))
    return units


def harmless_units() -> list[Unit]:
    units = []
    for path in sorted(HARMLESS.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc["split"] != "dev":
            continue
        by_key: dict[str, list[str]] = defaultdict(list)
        by_key_params: dict[str, list[str]] = defaultdict(list)
        for surface in _surfaces(doc["server"], doc):
            key = f"tools[{surface.tool_index}]" if surface.tool_index is not None else "server"
            into = by_key_params if surface.kind in learned.PARAM_KINDS else by_key
            into[key].extend(scored_sentences(surface.kind, surface.normalized.text))
        for key in sorted(by_key.keys() | by_key_params.keys()):  # sorted: the same order in every process
            texts, params = by_key[key], by_key_params[key]
            units.append(Unit(doc["server"], key, False, texts, list(dict.fromkeys(texts + params)), params))
    return units


def train(
    units: list[Unit], *, bits: int, epochs: int, l2: float, rate: float, pos_weight: float, seed: int = 0
) -> tuple[list[float], float]:
    """Logistic regression by AdaGrad over hashed features, classes weighted to balance."""
    data = [(features(s, bits), 1.0 if u.poisoned else 0.0) for u in units for s in u.examples]
    positives = sum(y for _x, y in data)
    negatives = len(data) - positives
    weight = {1.0: pos_weight * negatives / positives, 0.0: 1.0}
    w = [0.0] * (1 << bits)
    g2 = [1e-8] * (1 << bits)
    bias, bias_g2 = 0.0, 1e-8
    order = list(range(len(data)))
    rng = random.Random(seed)  # noqa: S311 (reproducible training, not secrets)
    for _epoch in range(epochs):
        rng.shuffle(order)
        for i in order:
            x, y = data[i]
            z = bias + sum(w[k] * v for k, v in x.items())
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            error = (p - y) * weight[y]
            for k, v in x.items():
                g = error * v + l2 * w[k]
                g2[k] += g * g
                w[k] -= rate * g / math.sqrt(g2[k])
            bias_g2 += error * error
            bias -= rate * error / math.sqrt(bias_g2)
    return w, bias


def score(model: Model, unit: Unit) -> float:
    return model.best(unit.texts)[0] if unit.texts else 0.0


def param_score(model: Model, unit: Unit) -> float:
    return model.best(unit.param_texts)[0] if unit.param_texts else 0.0


def folds(groups: list[str], k: int, seed: int) -> dict[str, int]:
    ordered = sorted(set(groups))
    random.Random(seed).shuffle(ordered)  # noqa: S311
    return {g: i % k for i, g in enumerate(ordered)}


def threshold_for(harmless_scores: list[float], fp: float) -> float:
    """The lowest threshold that flags at most `fp` of the harmless units."""
    ranked = sorted(harmless_scores, reverse=True)
    allowed = int(fp * len(ranked))
    return min(0.999, ranked[allowed] + 1e-6) if allowed < len(ranked) else 0.5


def cross_validate(args: argparse.Namespace, poisoned: list[Unit], harmless: list[Unit]) -> dict[str, float]:
    item_fold = folds([u.group for u in poisoned], args.k, args.seed)
    server_fold = folds([u.group for u in harmless], args.k, args.seed)
    out_p: dict[str, float] = {}
    out_h: dict[tuple[str, str], float] = {}
    param_p: dict[str, float] = {}
    param_h: dict[tuple[str, str], float] = {}
    best: dict[tuple[str, str], str] = {}
    for fold in range(args.k):
        train_units = [u for u in poisoned if item_fold[u.group] != fold] + [
            u for u in harmless if server_fold[u.group] != fold
        ]
        w, b = train(
            train_units,
            bits=args.bits,
            epochs=args.epochs,
            l2=args.l2,
            rate=args.rate,
            pos_weight=args.pos_weight,
        )
        model = Model.from_floats(args.bits, w, b, 0.5)
        for u in poisoned:
            if item_fold[u.group] == fold:
                out_p[u.key] = score(model, u)
                param_p[u.key] = param_score(model, u)
        for u in harmless:
            if server_fold[u.group] == fold:
                out_h[(u.group, u.key)] = score(model, u)
                param_h[(u.group, u.key)] = param_score(model, u)
                best[(u.group, u.key)] = model.best(u.texts)[1]
    tool_scores = [s for (_g, key), s in out_h.items() if key != "server"]
    server_scores = [s for (_g, key), s in out_h.items() if key == "server"]
    # Parameter sentences get a threshold of their own, at `--param-fp` of harmless tools.
    pt = threshold_for([s for (_g, key), s in param_h.items() if key != "server"], args.param_fp)
    print(f"parameter threshold {pt:.3f} (at {args.param_fp:.1%} of harmless tools)")
    print(f"cross-validation: {args.k} folds, {len(out_p)} poisoned items, {len(tool_scores)} harmless tools")
    print(
        f"{'harmless fp':>12} {'threshold':>10} {'detected':>10} {'tools flagged':>14} {'server texts':>13}"
    )
    result = {}
    for fp in sorted({0.0, 0.005, 0.01, 0.02, 0.03, args.fp}):
        t = threshold_for(tool_scores, fp)
        detected = sum(s >= t or param_p[k] >= pt for k, s in out_p.items())
        flagged = sum(s >= t or param_h[k] >= pt for k, s in out_h.items() if k[1] != "server")
        print(
            f"{fp:>12.1%} {t:>10.3f} {detected:>5}/{len(out_p):<4} {flagged:>6}/{len(tool_scores):<7}"
            f" {sum(s >= t for s in server_scores):>6}/{len(server_scores)}"
        )
        result[f"{fp}"] = t
    result["param"] = pt
    if args.show:
        t = threshold_for(tool_scores, args.fp)
        for key, s in sorted(out_p.items()):
            if s < t and param_p[key] < pt:
                print(f"  MISS {key} {s:.3f}")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "poisoned": out_p,
                    "harmless": {f"{g}/{k}": [s, best[(g, k)]] for (g, k), s in out_h.items()},
                }
            )
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cv", action="store_true", help="cross-validate on dev and print the rates")
    parser.add_argument("--write", action="store_true", help="train on all dev data and write the model")
    parser.add_argument(
        "--exclude", default="", help="leave out dev items whose id starts with this (a probe)"
    )
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--bits", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument(
        "--pos-weight", type=float, default=0.3, help="positives' total weight against negatives'"
    )
    parser.add_argument("--fp", type=float, default=0.01, help="harmless tools allowed above the threshold")
    parser.add_argument(
        "--param-fp", type=float, default=0.005, help="harmless tools allowed above the parameter threshold"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true")
    parser.add_argument("--show-examples", action="store_true")
    parser.add_argument("--out", help="write out-of-fold scores to this JSON file")
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--char", default=None, help="experiment: character n-gram sizes, e.g. 3,4,5 or none")
    parser.add_argument("--skip", default="", help="experiment: surface kinds not scored, comma separated")
    parser.add_argument(
        "--class-weight", type=float, default=None, help="experiment: weight of group features"
    )
    parser.add_argument(
        "--no-params", action="store_true", help="experiment: parameter descriptions unscored"
    )
    parser.add_argument(
        "--no-classes", action="store_true", help="experiment: without the word-group features"
    )
    args = parser.parse_args()
    if args.no_params:
        learned.SCORE_PARAMS = False
    if args.no_classes:
        learned.WORD_CLASSES = False
    if args.class_weight is not None:
        learned.CLASS_WEIGHT = args.class_weight
    if args.skip:
        SKIP_EXTRA.update(args.skip.split(","))
    if args.char is not None:
        learned.CHAR_NGRAMS = tuple(int(n) for n in args.char.split(",") if n.isdigit())
    items = [i for i in dev_items() if not (args.exclude and i["id"].startswith(args.exclude))]
    poisoned = poisoned_units(items)
    harmless = harmless_units()
    n_pos = sum(len(u.examples) for u in poisoned)
    n_neg = sum(len(u.examples) for u in harmless)
    print(f"{len(poisoned)} poisoned items ({n_pos} sentences), ", end="")
    print(f"{len(harmless)} harmless units ({n_neg} sentences)")
    if args.show_examples:
        for u in poisoned:
            for s in u.examples:
                print(f"  + {u.key}: {s[:140]}")
    threshold, param_threshold = 0.5, 1.0
    if args.cv or args.write:
        thresholds = cross_validate(args, poisoned, harmless)
        threshold = thresholds.get(f"{args.fp}", 0.5)
        param_threshold = thresholds["param"]
    if args.exclude:
        # A probe: the items left out, scored by a model trained on everything else.
        probe = poisoned_units([i for i in dev_items() if i["id"].startswith(args.exclude)])
        w, b = train(
            poisoned + harmless,
            bits=args.bits,
            epochs=args.epochs,
            l2=args.l2,
            rate=args.rate,
            pos_weight=args.pos_weight,
        )
        model = Model.from_floats(args.bits, w, b, threshold, param_threshold)
        scores = {u.key: score(model, u) for u in probe}
        params = {u.key: param_score(model, u) for u in probe}
        print("probe:", " ".join(f"{k}={v:.2f}/{params[k]:.2f}" for k, v in sorted(scores.items())))
        for t in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, threshold):
            hits = sum(v >= t or params[k] >= param_threshold for k, v in scores.items())
            print(f"  at {t:.3f} (parameters {param_threshold:.3f}): {hits}/{len(scores)}")
    if args.write:
        w, b = train(
            poisoned + harmless,
            bits=args.bits,
            epochs=args.epochs,
            l2=args.l2,
            rate=args.rate,
            pos_weight=args.pos_weight,
        )
        model = Model.from_floats(args.bits, w, b, threshold, param_threshold)
        args.model.write_bytes(model.to_bytes())
        flagged = sum(
            score(model, u) >= threshold or param_score(model, u) >= param_threshold
            for u in harmless
            if u.key != "server"
        )
        print(
            f"wrote {args.model} ({len(model.to_bytes())} bytes), threshold {threshold:.3f}, "
            f"parameters {param_threshold:.3f}; "
            f"in-sample harmless tools flagged: {flagged}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
