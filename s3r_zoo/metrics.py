"""Classification metrics for fine-tuning reports (NumPy only)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["classification_metrics", "binary_auroc", "aggregate"]


def binary_auroc(scores: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """Area under the ROC curve (Mann-Whitney U with tie correction); None if one class is absent."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(allv.size)
    i = 0
    while i < allv.size:  # average ranks over ties
        j = i
        while j + 1 < allv.size and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(allv.size)
    r[order] = ranks
    return float((r[:pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, per-class precision/recall/F1, confusion matrix, AUROC (2 classes)."""
    k = len(classes)
    pred = logits.argmax(axis=1)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    recalls = []
    for c, name in enumerate(classes):
        tp = cm[c, c]
        prec = tp / cm[:, c].sum() if cm[:, c].sum() else 0.0
        rec = tp / cm[c].sum() if cm[c].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": float(prec), "recall": float(rec), "f1": float(f1), "support": int(cm[c].sum())}
        if cm[c].sum():
            recalls.append(rec)
    out = {"accuracy": float((pred == labels).mean()) if labels.size else float("nan"),
           "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
           "per_class": per_class, "confusion_matrix": cm.tolist(), "n": int(labels.size)}
    if k == 2:
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out["auroc"] = binary_auroc(p[:, 1], labels)
    return out


def aggregate(runs: Sequence[dict], keys: Sequence[str] = ("accuracy", "balanced_accuracy", "auroc")) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of scalar metrics over runs."""
    out = {}
    for key in keys:
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            arr = np.asarray(vals, dtype=np.float64)
            out[key] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
                        "values": arr.tolist()}
    return out
