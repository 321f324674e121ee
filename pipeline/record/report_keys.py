"""The report's table of every key: sortable (click a header) and searchable in the page, with each key's
chosen model, its RMSE and the baseline's, their ratio, its band coverage and its forecast; clicking a key
shows its predictions next to the actuals and the baseline (a small inline SVG).

Plain HTML and a little script, no server and no library. The per-key plots are pre-rendered for at most
MAX_PLOTTED_KEYS keys (the best and the worst by ratio to the baseline); the table lists every key up to
MAX_LISTED_KEYS (the rest are in metrics/ and selection/).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from pipeline.record.scores import fmt

MAX_PLOTTED_KEYS = 200
MAX_LISTED_KEYS = 20_000
MAX_POINTS = 300  # per line of a key's plot
WIDTH, HEIGHT = 640, 160

SCRIPT = """<script>
(function(){
  var table=document.getElementById('keys'), body=table.tBodies[0], search=document.getElementById('key-search');
  var rows=Array.prototype.slice.call(body.rows), shown=document.getElementById('key-plot');
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(cell,column){
    cell.addEventListener('click',function(){
      var up=cell.getAttribute('data-order')!=='asc'; cell.setAttribute('data-order',up?'asc':'desc');
      rows.sort(function(a,b){
        var x=a.cells[column].getAttribute('data-value'), y=b.cells[column].getAttribute('data-value');
        var nx=parseFloat(x), ny=parseFloat(y), c;
        if(!isNaN(nx)&&!isNaN(ny)){c=nx-ny;}else if(isNaN(nx)!==isNaN(ny)){c=isNaN(nx)?1:-1;}
        else{c=x<y?-1:(x>y?1:0);}
        return up?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});});
  search.addEventListener('input',function(){
    var q=search.value.toLowerCase();
    rows.forEach(function(r){r.style.display=r.cells[0].textContent.toLowerCase().indexOf(q)>=0?'':'none';});});
  rows.forEach(function(r){r.addEventListener('click',function(){
    var plot=document.getElementById('plot-'+r.getAttribute('data-index'));
    shown.innerHTML='<h3></h3>'+(plot?plot.innerHTML:'<p>Not drawn: only '+%(cap)d+' keys are pre-rendered; '
      +'this key\\'s rows are in predictions/.</p>');
    shown.firstChild.textContent=r.cells[0].textContent;});});
})();
</script>"""


def _points(values: np.ndarray, low: float, high: float) -> str:
    x = np.linspace(0, WIDTH, len(values)) if len(values) > 1 else np.array([WIDTH / 2])
    span = (high - low) or 1.0
    y = HEIGHT - 4 - (values - low) / span * (HEIGHT - 8)
    drawn = np.isfinite(y)
    pairs = np.column_stack([x[drawn], y[drawn]]).ravel().tolist()
    return " ".join(["%.1f,%.1f"] * int(drawn.sum())) % tuple(pairs)  # one formatting call for all the points


def key_svg(rows: pd.DataFrame, date_column: str) -> str:
    """Actual (dark), predicted (blue) and baseline (orange, dashed) of one key's test rows, in date order."""
    rows = rows.sort_values(date_column)
    step = max(1, int(np.ceil(len(rows) / MAX_POINTS)))
    lines = {column: rows[column].to_numpy(dtype=float)[::step] for column in ("actual", "predicted", "baseline")}
    values = np.concatenate(list(lines.values()))
    values = values[np.isfinite(values)]
    if not len(values):
        return "<p>No finite values to draw.</p>"
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(high - low)):  # a span beyond float range: draw on a clipped scale
        low, high = max(low, -1e300), min(high, 1e300)
    styles = {"actual": 'stroke="#333"', "predicted": 'stroke="#1f77b4"', "baseline": 'stroke="#ff7f0e" '
              'stroke-dasharray="4 3"'}
    paths = "".join(f'<polyline fill="none" stroke-width="1.2" {styles[c]} points="{_points(v, low, high)}"/>'
                    for c, v in lines.items())
    first, last = rows[date_column].iloc[0], rows[date_column].iloc[-1]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">{paths}</svg>'
            f"<p class='legend'><span style='color:#333'>actual</span>, <span style='color:#1f77b4'>predicted"
            f"</span>, <span style='color:#ff7f0e'>naive baseline</span>; {html.escape(str(first))} to "
            f"{html.escape(str(last))}; values {html.escape(fmt(low))} to {html.escape(fmt(high))}</p>")


def plotted_keys(table: pd.DataFrame, cap: int = MAX_PLOTTED_KEYS) -> list:
    """Every key when they are few; else the best and the worst by ratio to the baseline."""
    if len(table) <= cap:
        return list(table.index)
    ordered = table.sort_values("ratio", na_position="last").index
    return [*ordered[:cap // 2], *ordered[-(cap - cap // 2):]]


def section(table: pd.DataFrame, predictions: pd.DataFrame, key_column: str, date_column: str,
            plotted: list) -> list[str]:
    """`table`: one row per key (index), the columns to show; `predictions`: the rows of `plotted` keys
    (their chosen model)."""
    listed = table.head(MAX_LISTED_KEYS)
    header = "".join(f"<th title='click to sort'>{html.escape(str(c))}</th>" for c in [key_column, *listed.columns])
    index_of = {key: number for number, key in enumerate(plotted)}
    body = []
    for number, (key, row) in enumerate(listed.iterrows()):
        cells = [f"<td data-value='{html.escape(str(key), quote=True)}'>{html.escape(str(key))}</td>"]
        for value in row:
            numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            text = fmt(value) if numeric else ("" if value is None else str(value))
            data = repr(float(value)) if numeric and np.isfinite(float(value)) else text
            cells.append(f"<td data-value='{html.escape(data, quote=True)}'>{html.escape(text)}</td>")
        body.append(f"<tr data-index='{index_of.get(key, -1)}'>{''.join(cells)}</tr>")
    templates = [f"<template id='plot-{index_of[key]}'>{key_svg(rows, date_column)}</template>"
                 for key, rows in predictions.groupby(key_column) if key in index_of]
    note = (f" The table lists the first {MAX_LISTED_KEYS} of {len(table)} keys." if len(table) > len(listed) else "")
    return ["<h2>Every key</h2>",
            f"<p>{len(table)} keys. Click a header to sort, type to search, click a key to see its test "
            f"predictions. Plots are pre-rendered for {len(plotted)} keys"
            + (f" (the {MAX_PLOTTED_KEYS // 2} best and worst by ratio to the baseline)" if len(plotted) < len(table)
               else "") + f".{note}</p>",
            "<input id='key-search' type='search' placeholder='search keys'>",
            "<div id='key-plot' class='key-plot'><p>Click a key in the table.</p></div>",
            f"<div class='scroll'><table id='keys'><thead><tr>{header}</tr></thead><tbody>{''.join(body)}"
            "</tbody></table></div>", *templates, SCRIPT % {"cap": MAX_PLOTTED_KEYS}]
