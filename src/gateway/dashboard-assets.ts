// The dashboard's page, stylesheet and script, served as they are (no build step): plain
// browser JavaScript that polls /salvo/status once a second and draws it with uPlot (served
// from the package's node_modules). Kept here as strings so the compiled package carries them.

/** GET / */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Salvo gateway</title>
    <link rel="stylesheet" href="/salvo/assets/uPlot.min.css" />
    <link rel="stylesheet" href="/salvo/assets/dashboard.css" />
  </head>
  <body>
    <header>
      <h1>Salvo gateway</h1>
      <div id="summary" class="muted">connecting...</div>
    </header>
    <form id="login" hidden>
      <p>This gateway needs a key to show its figures. An admin tenant's key shows every tenant.</p>
      <label>Gateway key <input id="key" type="password" autocomplete="off" /></label>
      <button type="submit">Show</button>
      <span id="login-error" class="error"></span>
    </form>
    <main>
      <section id="upstreams"></section>
      <section>
        <h2>Tenants</h2>
        <table id="tenants">
          <thead>
            <tr>
              <th>tenant</th>
              <th>priority</th>
              <th>in flight</th>
              <th>queued</th>
              <th>requests</th>
              <th>req/min</th>
              <th>tokens</th>
              <th>p50 / p95 / p99</th>
              <th>cost</th>
              <th>budget</th>
              <th>refused</th>
            </tr>
          </thead>
          <tbody></tbody>
        </table>
      </section>
    </main>
    <footer class="muted">
      Figures from <a href="/salvo/status">/salvo/status</a>, the same as
      <a href="/metrics">/metrics</a>; updated every second.
    </footer>
    <script src="/salvo/assets/uPlot.iife.min.js"></script>
    <script src="/salvo/assets/dashboard.js"></script>
  </body>
</html>
`;

/** GET /salvo/assets/dashboard.css */
export const DASHBOARD_CSS = `:root {
  --fg: #1d2430;
  --muted: #667085;
  --line: #e4e7ec;
  --card: #ffffff;
  --bg: #f5f6f8;
  --accent: #2563eb;
  --warn: #b45309;
  --bad: #b42318;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg);
  background: var(--bg);
}
body {
  margin: 0 auto;
  max-width: 1280px;
  padding: 16px 24px 32px;
}
header {
  display: flex;
  align-items: baseline;
  gap: 16px;
  flex-wrap: wrap;
}
h1 {
  font-size: 20px;
  margin: 0;
}
h2 {
  font-size: 16px;
  margin: 24px 0 8px;
}
h3 {
  font-size: 15px;
  margin: 0;
}
.muted {
  color: var(--muted);
  font-size: 13px;
}
.error {
  color: var(--bad);
}
.upstream {
  background: var(--card);
  border: 1px solid var(--line);
  border-radius: 8px;
  padding: 14px 16px;
  margin-top: 16px;
}
.upstream .title {
  display: flex;
  gap: 12px;
  align-items: baseline;
  flex-wrap: wrap;
}
.tiles {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 8px;
  margin: 12px 0;
}
.tile {
  border: 1px solid var(--line);
  border-radius: 6px;
  padding: 8px 10px;
}
.tile .label {
  color: var(--muted);
  font-size: 12px;
}
.tile .value {
  font-size: 20px;
  font-variant-numeric: tabular-nums;
}
.tile .of {
  color: var(--muted);
  font-size: 13px;
}
.tile.warn .value {
  color: var(--warn);
}
.charts {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(380px, 1fr));
  gap: 12px;
}
.chart h4 {
  margin: 0 0 4px;
  font-size: 13px;
  font-weight: 500;
  color: var(--muted);
}
table {
  width: 100%;
  border-collapse: collapse;
  background: var(--card);
  border: 1px solid var(--line);
  border-radius: 8px;
  font-variant-numeric: tabular-nums;
  font-size: 14px;
}
th,
td {
  text-align: right;
  padding: 6px 10px;
  border-bottom: 1px solid var(--line);
}
th:first-child,
td:first-child {
  text-align: left;
}
th {
  color: var(--muted);
  font-weight: 500;
  font-size: 12px;
}
form#login {
  background: var(--card);
  border: 1px solid var(--line);
  border-radius: 8px;
  padding: 12px 16px;
  margin-top: 16px;
}
footer {
  margin-top: 24px;
}
a {
  color: var(--accent);
}
`;

/** GET /salvo/assets/dashboard.js */
export const DASHBOARD_JS = `// The gateway's live dashboard: polls /salvo/status every second and draws it. Plain browser
// JavaScript (no build step); charts by uPlot, served from the package's node_modules.
/* global uPlot */

const POLL_MS = 1000;
const KEY = "salvo-gateway-key";
const charts = new Map();
let failures = 0;

const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function num(n) {
  return n === null || n === undefined ? "-" : fmt.format(n);
}
function int(n) {
  return n === null || n === undefined ? "-" : whole.format(n);
}
function usd(n) {
  return n === null || n === undefined ? "-" : "$" + (n < 1 ? n.toFixed(4) : n.toFixed(2));
}
function ms(n) {
  return n >= 1000 ? (n / 1000).toFixed(2) + "s" : Math.round(n) + "ms";
}
function sum(record) {
  return Object.values(record ?? {}).reduce((a, b) => a + b, 0);
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function headers() {
  const key = sessionStorage.getItem(KEY);
  return key ? { authorization: "Bearer " + key } : {};
}

async function poll() {
  let response;
  try {
    response = await fetch("/salvo/status", { headers: headers(), cache: "no-store" });
  } catch {
    failures++;
    document.getElementById("summary").textContent = "gateway unreachable (" + failures + ")";
    return;
  }
  if (response.status === 401 || response.status === 403) {
    document.getElementById("login").hidden = false;
    document.getElementById("summary").textContent = "a gateway key is needed";
    if (sessionStorage.getItem(KEY))
      document.getElementById("login-error").textContent = "that key was refused";
    return;
  }
  failures = 0;
  document.getElementById("login").hidden = true;
  render(await response.json());
}

function tile(field, label, value, of, warn) {
  return el(
    "div",
    { class: "tile" + (warn ? " warn" : ""), "data-field": field },
    el("div", { class: "label" }, label),
    el("div", { class: "value" }, value),
    el("div", { class: "of" }, of ?? ""),
  );
}

function upstreamCard(u) {
  const calls = u.calls;
  const limits = u.limits;
  const learned = (dim) =>
    u.configured[dim] === undefined && limits[dim] !== undefined ? " (learned)" : "";
  const refused = sum(calls.refused);
  const card = document.querySelector('.upstream[data-upstream="' + CSS.escape(u.name) + '"]');
  const tiles = el(
    "div",
    { class: "tiles" },
    tile(
      "inFlight",
      "in flight",
      int(u.concurrency.inFlight),
      "of " + int(u.concurrency.limit) + " (" + u.concurrency.mode + ")",
    ),
    tile(
      "queued",
      "queued",
      int(u.concurrency.queued),
      "at most " + int(u.concurrency.maxQueued),
      u.concurrency.queued > 0,
    ),
    tile("requests", "requests", int(calls.requests), int(sum(calls.byStatus)) + " answered"),
    tile(
      "requestsPerMinute",
      "requests / min",
      num(calls.requestsPerMinute),
      limits.requests === undefined
        ? "no limit known"
        : "limit " + int(limits.requests) + learned("requests"),
    ),
    tile(
      "tokensPerMinute",
      "tokens / min",
      int(calls.tokensPerMinute),
      limits.tokens !== undefined
        ? "limit " + int(limits.tokens) + learned("tokens")
        : limits.inputTokens !== undefined
          ? "input limit " + int(limits.inputTokens) + learned("inputTokens")
          : "no limit known",
    ),
    tile(
      "rateLimited",
      "429s from upstream",
      int(u.rateLimited),
      int(u.retries) + " retries",
      u.rateLimited > 0,
    ),
    tile("refused", "refused by gateway", int(refused), "queue, wait, tenant limits", refused > 0),
    tile(
      "latency",
      "latency p50 / p95 / p99",
      ms(calls.latency.p50),
      ms(calls.latency.p95) + " / " + ms(calls.latency.p99),
    ),
    tile(
      "cost",
      "cost",
      usd(calls.costUsd),
      int(calls.inputTokens) + " in, " + int(calls.outputTokens) + " out",
    ),
  );
  if (card) {
    card.querySelector(".tiles").replaceWith(tiles);
    card.querySelector(".cooldown").textContent =
      u.coolingDownMs > 0 ? "paused " + ms(u.coolingDownMs) + " (429)" : "";
    return card;
  }
  const fresh = el(
    "div",
    { class: "upstream", "data-upstream": u.name },
    el(
      "div",
      { class: "title" },
      el("h3", {}, u.name),
      el("span", { class: "muted" }, u.provider + " - " + u.baseUrl),
      el("span", { class: "muted cooldown" }, ""),
    ),
    tiles,
    el(
      "div",
      { class: "charts" },
      el(
        "div",
        { class: "chart", "data-chart": "concurrency" },
        el("h4", {}, "in flight, limit and queue"),
      ),
      el(
        "div",
        { class: "chart", "data-chart": "rates" },
        el("h4", {}, "requests per minute, and the limit"),
      ),
    ),
  );
  document.getElementById("upstreams").append(fresh);
  return fresh;
}

function chart(card, name, series, data) {
  const key = card.dataset.upstream + "/" + name;
  let plot = charts.get(key);
  if (!plot) {
    const host = card.querySelector('[data-chart="' + name + '"]');
    plot = new uPlot(
      {
        width: Math.max(360, host.clientWidth - 4),
        height: 180,
        series: [{}, ...series],
        axes: [{}, { size: 50 }],
        legend: { live: false },
        cursor: { show: false },
      },
      data,
      host,
    );
    charts.set(key, plot);
  } else plot.setData(data);
}

function render(status) {
  const up = Math.round(status.uptimeMs / 1000);
  document.getElementById("summary").textContent =
    (status.draining ? "DRAINING - " : "") +
    "up " +
    Math.floor(up / 60) +
    "m" +
    (up % 60) +
    "s - viewing as " +
    status.viewer.tenant +
    (status.viewer.admin ? " (all tenants)" : "") +
    " - updated " +
    new Date(status.now).toLocaleTimeString();
  for (const u of status.upstreams) {
    const card = upstreamCard(u);
    const h = u.history;
    const t = h.map((s) => s.t / 1000);
    chart(
      card,
      "concurrency",
      [
        { label: "in flight", stroke: "#2563eb", width: 2 },
        { label: "limit", stroke: "#16a34a", dash: [6, 4] },
        { label: "queued", stroke: "#d97706" },
      ],
      [t, h.map((s) => s.inFlight), h.map((s) => s.limit), h.map((s) => s.queued)],
    );
    const rpmLimit = u.limits.requests ?? null;
    chart(
      card,
      "rates",
      [
        { label: "requests/min", stroke: "#7c3aed", width: 2 },
        { label: "limit", stroke: "#dc2626", dash: [6, 4] },
      ],
      [t, h.map((s) => s.requestsPerMinute), h.map(() => rpmLimit)],
    );
  }
  const body = document.querySelector("#tenants tbody");
  body.replaceChildren(
    ...status.tenants.map((tn) => {
      const c = tn.calls;
      const budget = tn.budget
        ? tn.budget.maxCostUsd !== null
          ? usd(tn.budget.spentUsd) + " of " + usd(tn.budget.maxCostUsd)
          : int(tn.budget.spentTokens) + " of " + int(tn.budget.maxTokens) + " tokens"
        : "-";
      return el(
        "tr",
        { "data-tenant": tn.name },
        el("td", {}, tn.name),
        el("td", {}, String(tn.priority)),
        el("td", { "data-field": "inFlight" }, int(tn.inFlight)),
        el("td", { "data-field": "queued" }, int(tn.queued)),
        el("td", { "data-field": "requests" }, int(c.requests)),
        el("td", {}, num(c.requestsPerMinute)),
        el("td", {}, int(c.inputTokens + c.outputTokens)),
        el(
          "td",
          {},
          ms(c.latency.p50) + " / " + ms(c.latency.p95) + " / " + ms(c.latency.p99),
        ),
        el("td", {}, usd(c.costUsd)),
        el("td", {}, budget),
        el("td", {}, int(sum(c.refused))),
      );
    }),
  );
  document.body.dataset.updated = String(status.now);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
  document.getElementById("login-error").textContent = "";
  poll();
});

poll();
setInterval(poll, POLL_MS);
`;
