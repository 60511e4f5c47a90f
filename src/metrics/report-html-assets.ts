// The HTML report's inline style and script (plain browser JavaScript, no dependencies): the
// script reads the report's JSON from the page and draws each section's numbers and SVG charts.
// Kept as text so the page is one self-contained file; the headless-browser test runs it.

export const REPORT_STYLE = `
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #fff; --panel: #f6f8fb;
  --a: #2f6fde; --b: #e0892d; --c: #2e9e6a; --d: #c8433a; --e: #7b58c4; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 20px 28px 8px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 4px; }
.meta, .note { color: var(--muted); font-size: 12.5px; margin: 0 0 8px; }
main { padding: 12px 28px 40px; max-width: 1180px; }
section { margin: 22px 0; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.stat { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.stat .label { color: var(--muted); font-size: 12px; }
.stat .value { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 14px; }
figure { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg { display: block; width: 100%; height: auto; overflow: visible; }
svg text { font-size: 11px; fill: var(--muted); }
svg .axis { stroke: #9aa3b2; stroke-width: 1; }
svg .grid { stroke: var(--line); stroke-width: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; color: var(--muted); margin-top: 4px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; text-align: left; font-variant-numeric: tabular-nums; }
th { color: var(--muted); font-weight: 600; }
`;

export const REPORT_SCRIPT = `
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("salvo-report").textContent);
  var root = document.getElementById("report");
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = { a: "#2f6fde", b: "#e0892d", c: "#2e9e6a", d: "#c8433a", e: "#7b58c4", g: "#9aa3b2" };

  function el(tag, attrs, parent, text) {
    var node = document.createElement(tag);
    for (var k in attrs) if (attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function sv(tag, attrs, parent, text) {
    var node = document.createElementNS(NS, tag);
    for (var k in attrs) if (attrs[k] !== undefined) node.setAttribute(k, String(attrs[k]));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function get(path) {
    var value = data;
    var parts = path.split(".");
    for (var i = 0; i < parts.length; i++) {
      if (value === null || value === undefined) return undefined;
      value = value[parts[i]];
    }
    return value;
  }

  // Formats: what the page shows; data-value keeps the JSON's own number.
  function count(n) { return Math.round(n).toLocaleString("en-US"); }
  function ms(v) {
    if (v >= 60000) return (v / 60000).toFixed(2) + " min";
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    return v.toFixed(1) + " ms";
  }
  function usd(v) {
    var a = Math.abs(v);
    return "$" + v.toFixed(a >= 1 || a === 0 ? 2 : a >= 0.01 ? 4 : 6);
  }
  function ratio(v) { return v.toFixed(2) + "x"; }
  function perSecond(v) { return v.toFixed(2) + " /s"; }
  function text(v) { return String(v); }

  function section(title, note) {
    var s = el("section", {}, root);
    el("h2", {}, s, title);
    if (note) el("p", { class: "note" }, s, note);
    return s;
  }
  function stats(parent, items) {
    var grid = el("div", { class: "stats" }, parent);
    items.forEach(function (item) {
      var v = get(item[1]);
      if (v === undefined || v === null) return;
      var box = el("div", { class: "stat" }, grid);
      el("div", { class: "label" }, box, item[0]);
      el("div", { class: "value", "data-key": item[1], "data-value": String(v) }, box, item[2](v));
    });
    return grid;
  }

  function niceStep(max, ticks) {
    var raw = max / Math.max(1, ticks);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }
  function tickLabel(v, unit) {
    if (unit === "ms") return v >= 1000 ? +(v / 1000).toFixed(1) + "s" : +v.toFixed(0) + "ms";
    return Math.abs(v) >= 1000 ? +(v / 1000).toFixed(1) + "k" : String(+v.toFixed(2));
  }

  // A chart of lines, steps and bars over a numeric x axis.
  // spec: {id, title, xUnit, yUnit, xMax, yMax, series: [{name, kind, color, points}], bands, markers, xLabels}
  function chart(parent, spec) {
    var fig = el("figure", { "data-figure": spec.id }, parent);
    el("figcaption", {}, fig, spec.title);
    var W = 560, H = 220, L = 46, R = 12, T = 10, B = 30;
    var svg = sv("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": spec.title, "data-chart": spec.id }, fig);
    var xMax = spec.xMax, yMax = spec.yMax;
    spec.series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (xMax === undefined || p[0] > xMax) xMax = p[0];
        if (yMax === undefined || p[1] > yMax) yMax = p[1];
      });
    });
    if (!(xMax > 0)) xMax = 1;
    if (!(yMax > 0)) yMax = 1;
    var yStep = niceStep(yMax, 4);
    yMax = Math.ceil(yMax / yStep) * yStep;
    var x = function (v) { return L + (v / xMax) * (W - L - R); };
    var y = function (v) { return H - B - (v / yMax) * (H - T - B); };
    (spec.bands || []).forEach(function (b) {
      sv("rect", { x: x(b[0]), y: T, width: Math.max(1, x(b[1]) - x(b[0])), height: H - T - B, fill: "#f3d9d6", class: "band" }, svg);
    });
    for (var v = 0; v <= yMax + 1e-9; v += yStep) {
      sv("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, svg);
      sv("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, svg, tickLabel(v, spec.yUnit));
    }
    if (spec.xLabels) {
      spec.xLabels.forEach(function (lab) {
        sv("text", { x: x(lab[0]), y: H - B + 14, "text-anchor": "middle" }, svg, lab[1]);
      });
    } else {
      var xStep = niceStep(xMax, 6);
      for (var u = 0; u <= xMax + 1e-9; u += xStep) {
        sv("text", { x: x(u), y: H - B + 14, "text-anchor": "middle" }, svg, tickLabel(u, spec.xUnit));
      }
    }
    sv("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }, svg);
    sv("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }, svg);
    var bars = spec.series.filter(function (s) { return s.kind === "bar"; });
    spec.series.forEach(function (s) {
      if (s.kind === "bar") {
        var k = bars.indexOf(s);
        var w = Math.max(1, ((spec.barWidth || xMax / Math.max(1, s.points.length)) / xMax) * (W - L - R) / bars.length - 1);
        s.points.forEach(function (p) {
          if (!(p[1] > 0)) return;
          sv("rect", { x: x(p[0]) + k * (w + 1), y: y(p[1]), width: w, height: H - B - y(p[1]), fill: s.color, class: "mark", "data-series": s.name }, svg);
        });
        return;
      }
      if (s.points.length === 0) return;
      var d = "";
      s.points.forEach(function (p, i) {
        if (i === 0) d += "M" + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
        else if (s.kind === "step") d += "H" + x(p[0]).toFixed(1) + "V" + y(p[1]).toFixed(1);
        else d += "L" + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
      });
      if (s.kind === "step") d += "H" + x(xMax).toFixed(1);
      sv("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 2, class: "mark", "data-series": s.name }, svg);
    });
    (spec.markers || []).forEach(function (m, k) {
      sv("line", { x1: x(m[0]), x2: x(m[0]), y1: T, y2: H - B, stroke: m[2] || COLORS.d, "stroke-dasharray": "4 3", class: "marker" }, svg);
      sv("text", { x: x(m[0]) + 3, y: T + 10 + k * 12 }, svg, m[1]);
    });
    var legend = el("div", { class: "legend" }, fig);
    spec.series.forEach(function (s) {
      var item = el("span", {}, legend);
      el("i", { style: "background:" + s.color }, item);
      item.appendChild(document.createTextNode(s.name));
    });
    if (spec.bands && spec.bands.length) {
      var band = el("span", {}, legend);
      el("i", { style: "background:#f3d9d6" }, band);
      band.appendChild(document.createTextNode("admission paused (cooldown)"));
    }
    return fig;
  }

  el("span", {}, document.getElementById("generated"), "Written " + data.generatedAt);

  var run = data.run;
  var series = data.series;
  if (run) {
    var s1 = section("Summary", run.total !== null && run.total !== undefined ? count(run.total) + " items" : undefined);
    stats(s1, [
      ["Succeeded", "run.succeeded", count],
      ["Failed", "run.failed", count],
      ["Attempts", "run.attempts", count],
      ["Retries", "run.retries", count],
      ["429s", "run.rateLimited", count],
      ["Paused by cooldowns", "run.pausedMs", ms],
      ["Makespan", "run.makespanMs", ms],
      ["Throughput", "run.throughputPerSecond", perSecond],
      ["Input tokens", "run.tokens.input", count],
      ["Output tokens", "run.tokens.output", count],
      ["Cached", "run.cached", count],
      ["Shared", "run.shared", count],
    ]);
  }

  if (series && series.buckets.length) {
    var s2 = section("Over time", "Buckets of " + ms(series.bucketMs) + ".");
    var charts = el("div", { class: "charts" }, s2);
    var perS = 1000 / series.bucketMs;
    var bands = series.pauses;
    chart(charts, {
      id: "throughput", title: "Throughput (calls ended per second)", xUnit: "ms",
      series: [
        { name: "succeeded /s", kind: "line", color: COLORS.c, points: series.buckets.map(function (b) { return [b.t + series.bucketMs / 2, b.succeeded * perS]; }) },
        { name: "failed /s", kind: "line", color: COLORS.d, points: series.buckets.map(function (b) { return [b.t + series.bucketMs / 2, b.failed * perS]; }) },
      ],
    });
    chart(charts, {
      id: "in-flight", title: "In flight against the limit", xUnit: "ms", bands: bands,
      series: [
        { name: "in flight (mean)", kind: "line", color: COLORS.a, points: series.buckets.map(function (b) { return [b.t + series.bucketMs / 2, b.inFlight]; }) },
        { name: "limit", kind: "step", color: COLORS.b, points: series.buckets.map(function (b) { return [b.t, b.limit]; }) },
      ],
    });
    chart(charts, {
      id: "queue", title: "Waiting for admission", xUnit: "ms", bands: bands,
      series: [
        { name: "queued (most)", kind: "line", color: COLORS.g, points: series.buckets.map(function (b) { return [b.t + series.bucketMs / 2, b.queued]; }) },
      ],
    });
    chart(charts, {
      id: "failures", title: "429s, retries and cooldowns", xUnit: "ms", bands: bands, barWidth: series.bucketMs,
      series: [
        { name: "429s", kind: "bar", color: COLORS.d, points: series.buckets.map(function (b) { return [b.t, b.rateLimited]; }) },
        { name: "retries", kind: "bar", color: COLORS.b, points: series.buckets.map(function (b) { return [b.t, b.retries]; }) },
        { name: "cooldowns", kind: "bar", color: COLORS.e, points: series.buckets.map(function (b) { return [b.t, b.cooldowns]; }) },
      ],
    });
  }

  if (run) {
    var auto = run.limit.min !== run.limit.max;
    var s3 = section("Concurrency limit", auto
      ? "The limit moved between " + run.limit.min + " and " + run.limit.max + " (concurrency auto)."
      : "A static limit of " + run.limit.final + ".");
    stats(s3, [
      ["Initial", "run.limit.initial", count],
      ["Final", "run.limit.final", count],
      ["Lowest", "run.limit.min", count],
      ["Highest", "run.limit.max", count],
    ]);
    var timeline = run.limitTimeline.slice();
    if (timeline.length) {
      var endT = Math.max(run.makespanMs, timeline[timeline.length - 1][0]);
      chart(el("div", { class: "charts" }, s3), {
        id: "limit", title: "The limit over time", xUnit: "ms", xMax: endT,
        series: [{ name: "limit", kind: "step", color: COLORS.b, points: timeline }],
      });
    }

    var s4 = section("Latency", "Successful attempts (the call itself), and items from submission to outcome (queueing and retries included).");
    stats(s4, [
      ["p50", "run.latencyMs.p50", ms],
      ["p95", "run.latencyMs.p95", ms],
      ["p99", "run.latencyMs.p99", ms],
      ["max", "run.latencyMs.max", ms],
      ["mean", "run.latencyMs.mean", ms],
      ["item p50", "run.itemLatencyMs.p50", ms],
      ["item p95", "run.itemLatencyMs.p95", ms],
      ["item p99", "run.itemLatencyMs.p99", ms],
    ]);
    if (series && series.latency) {
      var edges = series.latency.edgesMs;
      var counts = series.latency.counts;
      var first = counts.findIndex(function (c) { return c > 0; });
      var last = counts.length - 1 - counts.slice().reverse().findIndex(function (c) { return c > 0; });
      if (first >= 0) {
        first = Math.max(0, first - 1);
        last = Math.min(counts.length - 1, last + 1);
        var pts = [];
        var labels = [];
        for (var i = first; i <= last; i++) {
          pts.push([i - first, counts[i]]);
          if ((i - first) % Math.max(1, Math.ceil((last - first + 1) / 8)) === 0) {
            labels.push([i - first + 0.5, tickLabel(i < edges.length ? edges[i] : edges[edges.length - 1] * 1.5, "ms")]);
          }
        }
        // A latency's position: its bin, interpolated on the log scale between the bin's edges.
        var at = function (v) {
          var j = edges.findIndex(function (e) { return v <= e; });
          if (j < 0) j = edges.length;
          var lo = j === 0 ? 0 : edges[j - 1];
          var hi = j < edges.length ? edges[j] : lo * 1.5;
          var f = lo > 0 ? Math.log(v / lo) / Math.log(hi / lo) : v / hi;
          return j - first + Math.max(0, Math.min(1, f));
        };
        chart(el("div", { class: "charts" }, s4), {
          id: "latency", title: "Latency histogram (attempts; log-spaced bins, upper edges)", xMax: last - first + 1, barWidth: 1,
          xLabels: labels,
          series: [{ name: "attempts", kind: "bar", color: COLORS.a, points: pts }],
          markers: [[at(run.latencyMs.p50), "p50"], [at(run.latencyMs.p95), "p95"], [at(run.latencyMs.p99), "p99"]],
        });
      }
    }

    var s5 = section("Cost and the physical bound",
      "M* is the least time any scheduler needs for these calls under the limits set: the slowest of the concurrency, request-rate, token-rate and longest-call terms.");
    stats(s5, [
      ["Cost", "run.cost.usd", usd],
      ["Calls without a price", "run.cost.unpriced", count],
      ["M* (bound)", "run.bound.boundMs", ms],
      ["Binding term", "run.bound.binding", text],
      ["Makespan / M*", "run.ratioToBound", ratio],
    ]);
    if (run.bound) {
      var terms = [["makespan", run.makespanMs], ["concurrency", run.bound.terms.concurrencyMs], ["requests", run.bound.terms.requestsMs], ["tokens", run.bound.terms.tokensMs], ["longest call", run.bound.terms.latencyMs]];
      var fig = el("figure", { "data-figure": "bound" }, el("div", { class: "charts" }, s5));
      el("figcaption", {}, fig, "Makespan against the bound's terms");
      var W = 560, rowH = 26, L = 96;
      var svgB = sv("svg", { viewBox: "0 0 " + W + " " + (terms.length * rowH + 8), role: "img", "aria-label": "bound", "data-chart": "bound" }, fig);
      var maxV = Math.max.apply(null, terms.map(function (t) { return t[1]; })) || 1;
      terms.forEach(function (t, k) {
        var binding = (t[0] === "requests" && run.bound.binding === "requests") || (t[0] === "tokens" && run.bound.binding === "tokens") || (t[0] === "concurrency" && run.bound.binding === "concurrency") || (t[0] === "longest call" && run.bound.binding === "latency");
        sv("text", { x: L - 6, y: k * rowH + 17, "text-anchor": "end" }, svgB, t[0]);
        var w = Math.max(t[1] > 0 ? 1 : 0, (t[1] / maxV) * (W - L - 80));
        sv("rect", { x: L, y: k * rowH + 5, width: w, height: rowH - 10, fill: k === 0 ? COLORS.a : binding ? COLORS.d : COLORS.g, class: "mark" }, svgB);
        sv("text", { x: L + w + 6, y: k * rowH + 17 }, svgB, ms(t[1]) + (binding ? "  (binds)" : ""));
      });
    }
  }

  var pipe = data.pipeline;
  if (pipe) {
    var rep = pipe.report;
    var s6 = section("Pipeline " + rep.pipeline, "Status " + rep.status + "; started " + rep.startedAt + ".");
    stats(s6, [
      ["Makespan", "pipeline.report.makespanMs", ms],
      ["Critical path", "pipeline.report.criticalPath.boundMs", ms],
      ["Makespan / critical path", "pipeline.report.criticalPath.ratio", ratio],
      ["Tasks", "pipeline.report.tasks.total", count],
      ["Succeeded", "pipeline.report.tasks.succeeded", count],
      ["Failed", "pipeline.report.tasks.failed", count],
      ["Reused", "pipeline.report.tasks.reused", count],
      ["Attempts", "pipeline.report.calls.attempts", count],
    ]);
    var table = el("table", {}, s6);
    var head = el("tr", {}, table);
    ["stage", "tasks", "ran", "wall", "longest task", "sum of tasks", "parallelism"].forEach(function (h) { el("th", {}, head, h); });
    rep.stages.forEach(function (st) {
      var row = el("tr", {}, table);
      [st.name, count(st.tasks), count(st.executed), ms(st.wallMs), ms(st.maxMs), ms(st.sumMs), st.parallelism === null ? "-" : st.parallelism.toFixed(2)].forEach(function (c) { el("td", {}, row, c); });
    });
    var tasks = pipe.tasks.slice(0, 400);
    if (tasks.length) {
      var figG = el("figure", { "data-figure": "gantt" }, s6);
      el("figcaption", {}, figG, "Tasks over time" + (pipe.tasks.length > tasks.length ? " (the first " + tasks.length + " of " + pipe.tasks.length + ")" : "") + "; the critical path in red");
      var GW = 1080, GL = 170, GR = 12, row = 14, GT = 4;
      var end = Math.max(rep.makespanMs, Math.max.apply(null, tasks.map(function (t) { return t.endMs; })));
      var gx = function (v) { return GL + (v / (end || 1)) * (GW - GL - GR); };
      var GH = GT + tasks.length * row + 24;
      var svgG = sv("svg", { viewBox: "0 0 " + GW + " " + GH, role: "img", "aria-label": "tasks over time", "data-chart": "gantt" }, figG);
      var stageColor = {};
      var palette = [COLORS.a, COLORS.c, COLORS.e, COLORS.b, COLORS.g];
      var crit = [];
      tasks.forEach(function (t, k) {
        if (!(t.stage in stageColor)) stageColor[t.stage] = palette[Object.keys(stageColor).length % palette.length];
        var yy = GT + k * row;
        sv("text", { x: GL - 6, y: yy + 10, "text-anchor": "end" }, svgG, t.id.length > 28 ? t.id.slice(0, 27) + "…" : t.id);
        var r = sv("rect", { x: gx(t.startMs), y: yy + 2, width: Math.max(1.5, gx(t.endMs) - gx(t.startMs)), height: row - 4, rx: 2,
          fill: t.critical ? COLORS.d : t.status === "failed" ? "#f0b4ae" : stageColor[t.stage], class: "mark" + (t.critical ? " critical" : ""), "data-task": t.id }, svgG);
        sv("title", {}, r, t.id + ": " + ms(t.endMs - t.startMs) + " (" + t.status + ")");
        if (t.critical) crit.push(t);
      });
      if (crit.length > 1) {
        var pd = "";
        crit.sort(function (a, b) { return a.startMs - b.startMs; }).forEach(function (t, k) {
          var idx = tasks.indexOf(t);
          pd += (k === 0 ? "M" : "L") + gx(t.endMs).toFixed(1) + " " + (GT + idx * row + row / 2).toFixed(1);
          if (k < crit.length - 1) {
            var next = crit[k + 1];
            pd += "L" + gx(next.startMs).toFixed(1) + " " + (GT + tasks.indexOf(next) * row + row / 2).toFixed(1);
          }
        });
        sv("path", { d: pd, fill: "none", stroke: COLORS.d, "stroke-width": 1.2, "stroke-dasharray": "3 2", class: "critical-link" }, svgG);
      }
      var axisY = GT + tasks.length * row + 4;
      sv("line", { x1: GL, x2: GW - GR, y1: axisY, y2: axisY, class: "axis" }, svgG);
      var step = niceStep(end || 1, 8);
      for (var tt = 0; tt <= end + 1e-9; tt += step) sv("text", { x: gx(tt), y: axisY + 14, "text-anchor": "middle" }, svgG, tickLabel(tt, "ms"));
      var lg = el("div", { class: "legend" }, figG);
      Object.keys(stageColor).forEach(function (name) { var it = el("span", {}, lg); el("i", { style: "background:" + stageColor[name] }, it); it.appendChild(document.createTextNode(name)); });
      var ci = el("span", {}, lg); el("i", { style: "background:" + COLORS.d }, ci); ci.appendChild(document.createTextNode("critical path: " + rep.criticalPath.tasks.join(" → ")));
    }
  }

  if (!run && !pipe) section("Nothing to show", "This report has no run summary and no pipeline.");
  document.body.setAttribute("data-drawn", "true");
})();
`;
