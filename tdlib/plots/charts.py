"""Interactive charts (plotly; they survive into the book's HTML): data in, figure out.

Colours follow the paper: BU red, TD green; TD_uni / TD_rev blue / purple. Nothing is shown or
saved here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

COLORS = {"bu": "#d62728", "td": "#2ca02c", "td_uni": "#1f77b4", "td_rev": "#9467bd"}
DASHES = {"lenetfc": "dot", "nin_light": "solid", "nin": "solid", "resnet32": "dash",
          "resnet18_half": "solid"}


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def learning_curves(rows: Sequence[Mapping[str, Any]], metric: str = "val_accuracy",
                    second: str | None = None) -> Any:
    """Per-epoch ``metric`` of every run, one panel per dataset; ``second`` (e.g. ``train_accuracy``)
    is drawn beside it in the same colour, faded, so the gap between the two shows."""
    from plotly.subplots import make_subplots

    go = _go()
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = make_subplots(rows=1, cols=max(len(datasets), 1), subplot_titles=datasets,
                        shared_yaxes=True)
    seen: set[str] = set()
    runs: dict[tuple[str, str, str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        runs.setdefault((r["dataset"], r["backbone"], r["variant"], r["rep"]), []).append(r)
    for (d, b, v, rep), rs in runs.items():
        for key, faded in ((metric, False), *(((second, True),) if second else ())):
            name = f"{b}/{v}" + (f" ({key.replace('_', ' ')})" if faded else "")
            fig.add_trace(go.Scatter(
                x=[r["epoch"] for r in rs], y=[100 * r[key] for r in rs],
                mode="lines" if faded else "lines+markers", opacity=0.4 if faded else 1.0,
                name=name, legendgroup=name, showlegend=name not in seen,
                line={"color": COLORS.get(v), "dash": DASHES.get(b, "solid")},
                hovertext=f"{name} rep {rep}",
            ), row=1, col=datasets.index(d) + 1)
            seen.add(name)
    fig.update_xaxes(title_text="epoch")
    label = metric.replace("_", " ") + (f" / {second.replace('_', ' ')}" if second else "")
    fig.update_yaxes(title_text=label + " (%)", col=1)
    fig.update_layout(height=380, margin={"t": 40})
    return fig


def accuracy_bars(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Test accuracy mean ± std per model, the paper's value as a diamond where known."""
    go = _go()
    fig = go.Figure()
    for v in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == v]
        fig.add_trace(go.Bar(
            x=[f"{r['dataset']}<br>{r['backbone']}" for r in rs], y=[r["test_acc_mean"] for r in rs],
            error_y={"type": "data", "array": [0 if np.isnan(r["test_acc_std"]) else r["test_acc_std"] for r in rs]},
            name=v, marker_color=COLORS.get(v),
        ))
    paper = [r for r in rows if not np.isnan(r.get("paper_clean_acc", np.nan))]
    if paper:
        fig.add_trace(go.Scatter(x=[f"{r['dataset']}<br>{r['backbone']}" for r in paper],
                                 y=[r["paper_clean_acc"] for r in paper], mode="markers",
                                 marker={"symbol": "diamond", "size": 10, "color": "black"},
                                 name="paper's clean accuracy (read off a figure)"))
    fig.update_layout(barmode="group", yaxis_title="test accuracy (%)", height=400)
    return fig


def robustness_curves(curves: Sequence[Mapping[str, Any]], *, datasets: Sequence[str],
                      attacks: Sequence[str], titles: Mapping[str, str] | None = None) -> Any:
    """The paper's Exp 2 figure: test-accuracy loss (%) against L2, rows = datasets, cols = attacks."""
    from plotly.subplots import make_subplots

    go = _go()
    titles = titles or {}
    fig = make_subplots(rows=len(datasets), cols=len(attacks), shared_yaxes=True,
                        column_titles=[titles.get(a, a).replace(": ", ":<br>") for a in attacks],
                        row_titles=list(datasets), horizontal_spacing=0.03,
                        vertical_spacing=0.08 if len(datasets) > 1 else 0.2)
    groups: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
    for c in curves:
        groups.setdefault((c["dataset"], c["attack"], c["backbone"], c["variant"]), []).append(c)
    seen: set[str] = set()
    for (d, a, b, v), pts in groups.items():
        if d not in datasets or a not in attacks:
            continue
        name = f"{b}/{v}"
        fig.add_trace(go.Scatter(
            x=[0.0] + [p["l2"] for p in pts], y=[0.0] + [p["loss"] for p in pts],
            mode="lines", line={"shape": "hv", "color": COLORS.get(v), "dash": DASHES.get(b, "solid")},
            name=name, legendgroup=name, showlegend=name not in seen,
        ), row=list(datasets).index(d) + 1, col=list(attacks).index(a) + 1)
        seen.add(name)
    fig.update_annotations(font_size=11)
    fig.update_xaxes(title_text="L2", row=len(datasets))
    fig.update_yaxes(title_text="accuracy loss (%)", col=1)
    fig.update_layout(height=260 * len(datasets) + 120, margin={"t": 70, "l": 60, "r": 40},
                      legend={"orientation": "h", "y": -0.12})
    return fig


def grouped_bars(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, color: str,
                 facet: str | None = None, error: str | None = None, y_title: str = "") -> Any:
    """Generic grouped bar chart (per-scale perturbation, localisation scores, ...)."""
    from plotly.subplots import make_subplots

    go = _go()
    facets = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    fig = make_subplots(rows=1, cols=len(facets), subplot_titles=[str(f) for f in facets] if facet else None,
                        shared_yaxes=True)
    seen: set[str] = set()
    for k, f in enumerate(facets):
        sub = [r for r in rows if facet is None or r[facet] == f]
        for c in dict.fromkeys(r[color] for r in sub):
            rs = [r for r in sub if r[color] == c]
            fig.add_trace(go.Bar(
                x=[str(r[x]) for r in rs], y=[r[y] for r in rs], name=str(c), legendgroup=str(c),
                showlegend=str(c) not in seen, marker_color=COLORS.get(str(c)),
                error_y=None if error is None else {
                    "type": "data", "array": [0 if not np.isfinite(r[error]) else r[error] for r in rs]},
            ), row=1, col=k + 1)
            seen.add(str(c))
    fig.update_layout(barmode="group", height=380)
    fig.update_yaxes(title_text=y_title, col=1)
    return fig


def architecture_profile(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
    """Resolution (H) and width (channels) layer by layer, one line per model."""
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(rows=1, cols=2, subplot_titles=["resolution (H) per layer", "width (channels) per layer"])
    for name, rows in tables.items():
        v = name.split("/")[-1]
        conv = [r for r in rows if r["height"] is not None]
        for col, key in ((1, "height"), (2, "channels")):
            fig.add_trace(go.Scatter(
                x=list(range(1, len(conv) + 1)), y=[r[key] for r in conv], mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == 1,
                line={"color": COLORS.get(v), "shape": "hv"},
                hovertext=[r["name"] for r in conv],
            ), row=1, col=col)
    fig.update_xaxes(title_text="layer (forward order)")
    fig.update_layout(height=380)
    return fig


def heatmaps(maps: Mapping[str, torch.Tensor | np.ndarray], *, title: str = "", zmax: float | None = None) -> Any:
    """Side-by-side heatmaps (e.g. Fourier error-rate maps of BU and TD)."""
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(maps))
    for k, m in enumerate(maps.values()):
        arr = m.numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
        fig.add_trace(go.Heatmap(z=arr, zmin=0, zmax=zmax, coloraxis="coloraxis"), row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=k + 1)
    fig.update_layout(title=title, height=360, coloraxis={"colorscale": "Viridis"})
    return fig


VERDICT_COLORS = {"holds": "#2ca02c", "does not hold": "#d62728", "inconclusive": "#7f7f7f",
                  "not claim-grade": "#ff7f0e", "not measured": "#c7c7c7"}


def forest_plot(rows: Sequence[Any]) -> Any:
    """Each claim row's effect and 95% interval against its threshold (one panel per claim,
    each with its own unit); colour = verdict. Infinite interval ends are drawn at the panel's
    edge and named in the hover text."""
    from plotly.subplots import make_subplots

    go = _go()
    rows = [r for r in rows if (r.effect is not None and np.isfinite(r.effect))
            or (r.ci is not None and any(np.isfinite(v) for v in r.ci))]
    claims = list(dict.fromkeys(r.claim for r in rows))
    if not claims:
        fig = go.Figure()
        fig.update_layout(title="no claim has a measured effect yet", height=160)
        return fig
    counts = [sum(r.claim == c for r in rows) for c in claims]
    fig = make_subplots(rows=len(claims), cols=1, row_heights=[max(n, 1) for n in counts],
                        vertical_spacing=0.35 / len(claims),
                        subplot_titles=[f"{rows_of[0].spec.statement}<br><sup>{rows_of[0].spec.rule}</sup>"
                                        for rows_of in ([r for r in rows if r.claim == c] for c in claims)])
    seen: set[str] = set()
    for k, claim in enumerate(claims, start=1):
        sub = [r for r in rows if r.claim == claim]
        spec = sub[0].spec
        finite = [v for r in sub for v in (r.effect, *(r.ci or ())) if v is not None and np.isfinite(v)]
        finite.append(spec.threshold)
        lo, hi = min(finite), max(finite)
        pad = 0.15 * (hi - lo or 1.0)
        lo, hi = lo - pad, hi + pad
        for r in sub:
            low, high = r.ci if r.ci is not None else (np.nan, np.nan)
            eff = r.effect if r.effect is not None else np.nan
            shown = [float(np.clip(v, lo, hi)) if not np.isnan(v) else np.nan for v in (eff, low, high)]
            verdict = str(r.verdict)
            fig.add_trace(go.Scatter(
                x=[shown[0]], y=[r.scope], mode="markers",
                marker={"size": 10, "color": VERDICT_COLORS.get(verdict, "black")},
                error_x={"type": "data", "symmetric": False,
                         "array": [max(shown[2] - shown[0], 0) if not np.isnan(shown[2]) else 0],
                         "arrayminus": [max(shown[0] - shown[1], 0) if not np.isnan(shown[1]) else 0]},
                name=verdict, legendgroup=verdict, showlegend=verdict not in seen,
                hovertext=f"{r.scope}: {eff:+.3g}{spec.unit} [{low:+.3g}, {high:+.3g}], n = {r.n}: "
                          f"{verdict}", hoverinfo="text",
            ), row=k, col=1)
            seen.add(verdict)
        fig.add_vline(x=spec.threshold, line_dash="dash", line_color="black", row=k, col=1)
        fig.update_xaxes(range=[lo, hi], title_text=spec.unit.strip() or "effect", row=k, col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=140 + 70 * sum(counts) + 60 * len(claims), margin={"l": 10, "r": 10, "t": 60},
                      legend={"orientation": "h", "y": -0.05})
    return fig
