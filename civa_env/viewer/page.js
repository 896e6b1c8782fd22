// CIVA run viewer. Reads the JSON embedded in #civa-data (typed columns as base64), then
// draws charts, the day graph, the behaviour table and resident timelines on demand.
// window.civaViewer exposes the state for tests: ready, day, drawn counts, setDay(), the
// colours it draws with (colours), the charts' geometry (charts) and the residents drawn
// (circles()). Colours come from the page's palette (civa_env/style.py, shared with the
// figures of civa run and civa report).
"use strict";
(function () {
  const T0 = performance.now();
  const viewer = (window.civaViewer = { ready: false, error: null, day: 1, drawn: {} });

  // ---------- data ----------
  const TYPES = { i8: Int8Array, u8: Uint8Array, i16: Int16Array, i32: Int32Array, f32: Float32Array };
  function unpack(value) {
    if (Array.isArray(value)) return value.map(unpack);
    if (value && typeof value === "object") {
      if (typeof value.$b64 === "string") {
        const bin = atob(value.$b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return new TYPES[value.t](bytes.buffer);
      }
      const out = {};
      for (const k of Object.keys(value)) out[k] = unpack(value[k]);
      return out;
    }
    return value;
  }

  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else if (k === "text") node.textContent = v;
      else node[k] = v;
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function fmt(x, digits) {
    if (x === null || x === undefined) return "-";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return String(x);
    return x.toFixed(digits === undefined ? 2 : digits);
  }

  let D; // the run's data
  const K = {}; // event kind label -> code
  const S = {}; // derived state

  // ---------- colours (the palette of civa_env/style.py, in D.palette) ----------
  let P; // the palette
  function rgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + [(n >> 16) & 255, (n >> 8) & 255, n & 255].join(",") + "," + alpha + ")";
  }
  // Value conditions: one hue per value; "with" full, "without" pale, baseline grey.
  function conditionColour(code) {
    return code < 0 ? P.unknown : (P.conditions[D.conditionLabels[String(code)]] || P.unknown);
  }
  function conditionLabel(code) { return code < 0 ? "unknown" : D.conditionLabels[String(code)]; }
  function actionColour(kind) { return P.actions[kind] || P.otherPolicy; }
  function policyColour(spec) { return P.policies[spec.split(":")[0]] || P.otherPolicy; }
  function behaviourColour(b) { return P.behaviours[b] || P.otherPolicy; }
  // Labels a reader sees: no raw keys ("power_seeking" -> "power-seeking").
  function behaviourLabel(b) { return b.replace(/_/g, "-"); }
  function kindLabel(k) { return k.replace(/_/g, " "); }
  function badge(b) {
    return el("span", { class: "badge b-" + b, text: behaviourLabel(b), style: "background:" + behaviourColour(b) });
  }
  viewer.colours = {
    action: (k) => actionColour(k), condition: (code) => conditionColour(code),
    policy: (spec) => policyColour(spec), behaviour: (b) => behaviourColour(b),
    series: (k) => P.series[k], edge: (k) => EDGE_STYLES[k].colour,
  };

  // Edges of the graph, in their action's colour (alpha: how strongly they are drawn).
  const EDGES = {
    alliance: { label: "alliances (standing)", alpha: 0.55, width: 2.2 },
    message: { label: "messages to one", alpha: 0.45, width: 1 },
    broadcast: { label: "messages to everyone (ring)", alpha: 0.6, width: 1 },
    merge_proposal: { label: "alliance proposals", alpha: 0.8, width: 1, dash: [3, 3] },
    gift: { label: "gifts", alpha: 0.85, width: 1.4 },
    attack: { label: "attacks (dashed: failed)", alpha: 0.9, width: 1.6 },
    birth: { label: "births (parent to newcomer)", alpha: 0.8, width: 1.2, dash: [2, 2] },
  };
  const EDGE_STYLES = {};
  const EDGE_KINDS = Object.keys(EDGES);
  const shown = {};
  for (const k of EDGE_KINDS) shown[k] = true;

  function name(i) { return "resident_" + i; }
  function dayIndexOfRow(row) { // days are contiguous slices of the event columns
    const off = D.events.off;
    let lo = 0, hi = D.nDays - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (off[mid] <= row) lo = mid; else hi = mid - 1; }
    return lo;
  }
  function textOf(row) {
    const j = S.textRow.get(row);
    return j === undefined ? "" : D.strings[j];
  }

  function prepare() {
    D.kinds.forEach((k, i) => { K[k] = i; });
    for (const k of EDGE_KINDS) EDGE_STYLES[k] = { ...EDGES[k], colour: rgba(P.edges[k], EDGES[k].alpha) };
    S.textRow = new Map();
    const tr = D.texts.rows, ti = D.texts.idx;
    for (let k = 0; k < tr.length; k++) S.textRow.set(tr[k], ti[k]);
    // Reference wealth for node sizes: the 90th percentile of the living over the run.
    const w = Array.from(D.alive.wealth).filter((x) => x > 0).sort((a, b) => a - b);
    S.wealthRef = w.length ? Math.max(w[Math.floor(0.9 * (w.length - 1))], 1e-6) : 1;
    let maxAlive = 1;
    for (let d = 0; d < D.nDays; d++) maxAlive = Math.max(maxAlive, D.alive.off[d + 1] - D.alive.off[d]);
    S.maxAlive = maxAlive;
    S.behaviourOfRow = new Map();
    const br = D.behaviours.rows, bb = D.behaviours.bits;
    for (let k = 0; k < br.length; k++) S.behaviourOfRow.set(br[k], bb[k]);
  }

  // ---------- charts ----------
  function setupCanvas(canvas, cssHeight) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = cssHeight || canvas.clientHeight || 150;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }
  // Each chart: a plot area inset by its tick labels (measured), days as bands (a bar and
  // a point of a line sit in the middle of their day's band, never on the axis labels).
  viewer.charts = {};
  const FONT = "10px system-ui, sans-serif";
  function niceTicks(ymax, integer) { // about 4 round steps from 0 to at least ymax
    const raw = ymax / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw * (1 - 1e-9));
    if (integer) step = Math.max(1, Math.ceil(step));
    const count = Math.ceil(ymax / step - 1e-9);
    const ticks = [];
    for (let k = 0; k <= count; k++) ticks.push(k * step);
    let digits = 0;
    while (digits < 6 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-6) digits++;
    return { ticks, top: count * step, digits };
  }
  function chartFrame(canvas, ctx, width, height, ymax, integer) {
    const { ticks, top, digits } = niceTicks(ymax > 0 ? ymax : 1, integer);
    ctx.font = FONT;
    const texts = ticks.map((v) => v.toFixed(digits));
    const labelW = Math.max(...texts.map((t) => ctx.measureText(t).width));
    const f = { l: Math.ceil(labelW) + 10, r: width - 8, t: 8, b: height - 20, top, labels: [], bars: [] };
    f.band = (f.r - f.l) / Math.max(D.nDays, 1);
    f.x = (di) => f.l + (di + 0.5) * f.band;
    f.y = (v) => f.b - (f.b - f.t) * Math.min(v, top) / top;
    ctx.strokeStyle = "#d0d5dd"; ctx.fillStyle = "#667085"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ticks.forEach((v, k) => {
      const y = Math.round(f.y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(f.l, y); ctx.lineTo(f.r, y); ctx.stroke();
      ctx.fillText(texts[k], f.l - 5, y);
      const w = ctx.measureText(texts[k]).width;
      f.labels.push({ x0: f.l - 5 - w, x1: f.l - 5, y0: y - 5, y1: y + 5 });
    });
    ctx.strokeStyle = "#98a2b3";
    ctx.beginPath(); ctx.moveTo(f.l + 0.5, f.t); ctx.lineTo(f.l + 0.5, f.b); ctx.lineTo(f.r, f.b + 0.5); ctx.stroke();
    // Day ticks: the first day and round days, as many as fit side by side.
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const n = D.nDays;
    const widest = ctx.measureText(String(D.days[n - 1])).width + 8;
    const every = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000].find((e) => e * f.band >= widest) || 1000;
    const placed = [];
    for (let di = 0; di < n; di++) {
      if (di > 0 && D.days[di] % every !== 0) continue;
      const x = f.x(di), t = String(D.days[di]), w = ctx.measureText(t).width;
      const box = { x0: x - w / 2, x1: x + w / 2, y0: f.b + 4, y1: f.b + 14 };
      if (box.x1 > width || placed.some((b) => box.x0 < b.x1 + 4 && box.x1 > b.x0 - 4)) continue;
      ctx.fillText(t, x, f.b + 4);
      placed.push(box);
    }
    f.labels.push(...placed);
    viewer.charts[canvas.id] = { plot: { l: f.l, r: f.r, t: f.t, b: f.b }, labels: f.labels, bars: f.bars, width, height };
    S.frames = S.frames || {};
    S.frames[canvas.id] = f;
    return f;
  }
  function drawMarker(ctx, f) {
    const x = f.x(S.dayIndex);
    ctx.strokeStyle = "rgba(17,24,39,0.7)"; ctx.lineWidth = 1.5; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(x, f.t); ctx.lineTo(x, f.b); ctx.stroke(); ctx.setLineDash([]);
  }
  function lineChart(canvas, series, fixedMax, integer) {
    const { ctx, width, height } = setupCanvas(canvas, 150);
    let ymax = fixedMax || 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > ymax) ymax = v;
    const f = chartFrame(canvas, ctx, width, height, ymax, integer);
    for (const s of series) {
      ctx.strokeStyle = s.colour; ctx.lineWidth = 1.8; ctx.beginPath();
      let started = false;
      s.values.forEach((v, di) => {
        if (v === null) { started = false; return; }
        if (!started) { ctx.moveTo(f.x(di), f.y(v)); started = true; }
        else ctx.lineTo(f.x(di), f.y(v));
      });
      ctx.stroke();
      if (D.nDays === 1) { ctx.fillStyle = s.colour; ctx.fillRect(f.x(0) - 2, f.y(s.values[0]) - 2, 4, 4); }
    }
    drawMarker(ctx, f);
  }
  function actionsChart(canvas) {
    const { ctx, width, height } = setupCanvas(canvas, 150);
    const kinds = Object.keys(D.actions);
    const totals = D.days.map((_, di) => kinds.reduce((s, k) => s + D.actions[k][di], 0));
    const f = chartFrame(canvas, ctx, width, height, Math.max(1, ...totals), true);
    const base = new Array(D.nDays).fill(0);
    const barW = Math.max(1, Math.min(f.band * 0.8, f.band - 1));
    for (let di = 0; di < D.nDays; di++) f.bars.push([f.x(di) - barW / 2, f.x(di) + barW / 2]);
    for (const k of kinds) {
      ctx.fillStyle = actionColour(k);
      for (let di = 0; di < D.nDays; di++) {
        const v = D.actions[k][di];
        if (!v) continue;
        const y0 = f.y(base[di]), y1 = f.y(base[di] + v);
        ctx.fillRect(f.x(di) - barW / 2, y1, barW, y0 - y1);
        base[di] += v;
      }
    }
    drawMarker(ctx, f);
  }
  function drawCharts() {
    const c = D.census, sc = P.series;
    lineChart($("chart-population"), [{ values: c.population, colour: sc.population }], 0, true);
    lineChart($("chart-wealth"), [{ values: c.wealth_mean, colour: sc.wealth_mean },
      { values: c.wealth_median, colour: sc.wealth_median }]);
    lineChart($("chart-gini"), [{ values: c.gini, colour: sc.gini }], 1);
    actionsChart($("chart-actions"));
  }
  function chartClick(ev) {
    const f = S.frames && S.frames[ev.currentTarget.id];
    if (!f) return;
    const rect = ev.currentTarget.getBoundingClientRect();
    setDayIndex(Math.floor((ev.clientX - rect.left - f.l) / f.band));
  }
  // A chart's legend, below it (outside the plot area): one item per series, never broken.
  function legend(box, items) {
    box.replaceChildren(...items.map(([label, colour]) => el("span", { class: "legend-item" },
      el("span", { class: "swatch", style: "background:" + colour }), label)));
  }

  // ---------- graph ----------
  function graphGeometry() {
    const canvas = $("graph");
    const width = canvas.clientWidth || 600;
    const height = Math.max(320, Math.min(640, Math.round(width * 0.62)));
    const base = Math.max(1.6, Math.min(11, 0.42 * Math.sqrt((width * height) / S.maxAlive) / 2));
    // Room for the largest circle and the rings around it on every side, and for the
    // residents' numbers (drawn right of the circle in small communities).
    const pad = Math.ceil(base * 3.2 + 10);
    const numbers = Math.ceil(6.5 * String(D.residents.n - 1).length) + 4;
    return { canvas, width, height, pad, padRight: pad + numbers, base };
  }
  function px(i, g) { return g.pad + D.residents.x[i] * (g.width - g.pad - g.padRight); }
  function py(i, g) { return g.pad + D.residents.y[i] * (g.height - 2 * g.pad); }
  function radius(w, g) {
    const f = Math.sqrt(Math.max(w, 0) / S.wealthRef);
    return Math.min(g.base * 3.2, g.base * (0.45 + Math.min(f, 2.5)));
  }
  function arrow(ctx, x0, y0, x1, y1, r1, head) {
    const dx = x1 - x0, dy = y1 - y0, len = Math.hypot(dx, dy) || 1;
    const ex = x1 - dx / len * r1, ey = y1 - dy / len * r1;
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(ex, ey); ctx.stroke();
    if (head) {
      const ux = dx / len, uy = dy / len;
      ctx.beginPath(); ctx.moveTo(ex, ey);
      ctx.lineTo(ex - ux * head - uy * head * 0.5, ey - uy * head + ux * head * 0.5);
      ctx.lineTo(ex - ux * head + uy * head * 0.5, ey - uy * head - ux * head * 0.5);
      ctx.closePath(); ctx.fill();
    }
  }
  function drawGraph() {
    const g = graphGeometry();
    const { ctx } = setupCanvas(g.canvas, g.height);
    g.canvas.style.height = g.height + "px";
    const di = S.dayIndex, day = D.days[di];
    const a0 = D.alive.off[di], a1 = D.alive.off[di + 1];
    const ids = D.alive.ids, wealth = D.alive.wealth;
    // Radius of each resident today (dead-today residents keep yesterday's position).
    const r = S.radius || (S.radius = new Float32Array(D.residents.n));
    r.fill(0);
    for (let k = a0; k < a1; k++) r[ids[k]] = radius(wealth[k], g);
    const e0 = D.events.off[di], e1 = D.events.off[di + 1];
    const E = D.events;
    const drawn = { residents: 0, deaths: 0 };
    for (const k of EDGE_KINDS) drawn[k] = 0;
    const many = (e1 - e0) > 1500;
    const head = many ? 0 : 5;
    // Busy days fade their edges so the residents stay visible under them.
    ctx.globalAlpha = Math.max(0.2, Math.min(1, 400 / Math.max(1, e1 - e0)));
    // Standing alliances at the end of the day.
    if (shown.alliance) {
      const al = D.alliances, st = EDGE_STYLES.alliance;
      ctx.strokeStyle = st.colour; ctx.lineWidth = st.width;
      ctx.beginPath();
      for (let k = 0; k < al.a.length; k++) {
        if (al.start[k] <= day && al.end[k] >= day) {
          ctx.moveTo(px(al.a[k], g), py(al.a[k], g)); ctx.lineTo(px(al.b[k], g), py(al.b[k], g));
          drawn.alliance++;
        }
      }
      ctx.stroke();
    }
    const order = ["message", "merge_proposal", "birth", "gift", "attack"];
    for (const kindName of order) {
      if (!shown[kindName] && !(kindName === "message" && shown.broadcast)) continue;
      const code = K[kindName];
      const st = EDGE_STYLES[kindName];
      ctx.strokeStyle = st.colour; ctx.fillStyle = st.colour; ctx.lineWidth = st.width;
      ctx.setLineDash(st.dash || []);
      for (let row = e0; row < e1; row++) {
        if (E.kind[row] !== code) continue;
        const i = E.actor[row], j = E.target[row];
        if (kindName === "message" && j < 0) {
          if (!shown.broadcast) continue;
          const bs = EDGE_STYLES.broadcast;
          ctx.save(); ctx.strokeStyle = bs.colour; ctx.lineWidth = bs.width; ctx.setLineDash([]);
          ctx.beginPath(); ctx.arc(px(i, g), py(i, g), (r[i] || g.base) + 3, 0, 2 * Math.PI); ctx.stroke();
          ctx.restore();
          drawn.broadcast++;
          continue;
        }
        if (!shown[kindName] || i < 0 || j < 0) continue;
        if (kindName === "attack") ctx.setLineDash((E.flag[row] & 1) ? [] : [4, 3]);
        arrow(ctx, px(i, g), py(i, g), px(j, g), py(j, g), (r[j] || g.base) + 1, head);
        drawn[kindName]++;
      }
      ctx.setLineDash([]);
    }
    ctx.globalAlpha = 1;
    // Residents alive at the end of the day.
    const cond = D.residents.condition, pol = D.residents.policy;
    const multiPolicy = D.residents.policyNames.length > 1;
    for (let k = a0; k < a1; k++) {
      const i = ids[k];
      ctx.beginPath(); ctx.arc(px(i, g), py(i, g), r[i], 0, 2 * Math.PI);
      ctx.fillStyle = conditionColour(cond[i]); ctx.fill();
      ctx.lineWidth = multiPolicy && pol[i] > 0 ? 1.6 : 0.6;
      ctx.strokeStyle = multiPolicy && pol[i] > 0 ? "#111827" : "rgba(0,0,0,0.45)";
      ctx.stroke();
      drawn.residents++;
    }
    // Small communities get their residents' numbers.
    if (a1 - a0 <= 60) {
      ctx.fillStyle = "#374151"; ctx.font = "10px system-ui, sans-serif";
      ctx.textAlign = "left"; ctx.textBaseline = "middle";
      for (let k = a0; k < a1; k++) {
        const i = ids[k];
        ctx.fillText(String(i), px(i, g) + r[i] + 2, py(i, g) - r[i] * 0.6);
      }
    }
    // Deaths of the day.
    ctx.strokeStyle = "#111827"; ctx.lineWidth = 1.5;
    const death = K.death;
    for (let row = e0; row < e1; row++) {
      if (E.kind[row] !== death) continue;
      const i = E.actor[row], x = px(i, g), y = py(i, g), s = Math.max(3, g.base);
      ctx.beginPath(); ctx.moveTo(x - s, y - s); ctx.lineTo(x + s, y + s);
      ctx.moveTo(x + s, y - s); ctx.lineTo(x - s, y + s); ctx.stroke();
      drawn.deaths++;
    }
    // Marked event (from the behaviour table) and selected resident.
    if (S.markRow !== null && S.markRow >= e0 && S.markRow < e1) {
      const i = E.actor[S.markRow], j = E.target[S.markRow];
      ctx.strokeStyle = "rgba(250,204,21,0.9)"; ctx.lineWidth = 6;
      ctx.beginPath(); ctx.moveTo(px(i, g), py(i, g));
      if (j >= 0) ctx.lineTo(px(j, g), py(j, g));
      ctx.stroke();
      ctx.beginPath(); ctx.arc(px(i, g), py(i, g), (r[i] || g.base) + 6, 0, 2 * Math.PI); ctx.stroke();
    }
    if (S.selected !== null && S.selected < D.residents.n) {
      const i = S.selected;
      ctx.strokeStyle = "#111827"; ctx.lineWidth = 2.5;
      ctx.beginPath(); ctx.arc(px(i, g), py(i, g), (r[i] || g.base) + 5, 0, 2 * Math.PI); ctx.stroke();
    }
    S.geometry = g;
    viewer.drawn = drawn;
    updateDayFacts(drawn);
  }
  // The residents drawn on the slider's day: [i, x, y, radius, right end of its number]
  // in CSS pixels.
  viewer.circles = function () {
    const g = S.geometry, out = [];
    const a0 = D.alive.off[S.dayIndex], a1 = D.alive.off[S.dayIndex + 1];
    const ctx = g.canvas.getContext("2d");
    ctx.font = "10px system-ui, sans-serif";
    for (let k = a0; k < a1; k++) {
      const i = D.alive.ids[k], x = px(i, g), r = S.radius[i];
      out.push([i, x, py(i, g), r, a1 - a0 <= 60 ? x + r + 2 + ctx.measureText(String(i)).width : x + r]);
    }
    return { width: g.width, height: g.height, circles: out };
  };
  // Where resident i is drawn, in CSS pixels from the canvas's top left corner.
  viewer.position = function (i) { const g = S.geometry || graphGeometry(); return [px(i, g), py(i, g)]; };
  function residentAt(clientX, clientY) {
    const g = S.geometry; if (!g) return -1;
    const rect = g.canvas.getBoundingClientRect();
    const x = clientX - rect.left, y = clientY - rect.top;
    const di = S.dayIndex, ids = D.alive.ids;
    let best = -1, bestD = Infinity;
    for (let k = D.alive.off[di]; k < D.alive.off[di + 1]; k++) {
      const i = ids[k];
      const d = Math.hypot(px(i, g) - x, py(i, g) - y);
      if (d < bestD && d <= S.radius[i] + 4) { best = i; bestD = d; }
    }
    return best;
  }
  function wealthAt(i, di) {
    const ids = D.alive.ids;
    for (let k = D.alive.off[di]; k < D.alive.off[di + 1]; k++) if (ids[k] === i) return D.alive.wealth[k];
    return null;
  }

  // ---------- side panel ----------
  function buildSide() {
    const box = $("edge-toggles");
    for (const k of EDGE_KINDS) {
      const st = EDGE_STYLES[k];
      const input = el("input", { type: "checkbox", checked: true, id: "show-" + k });
      input.addEventListener("change", () => { shown[k] = input.checked; drawGraph(); });
      box.append(el("label", { class: "toggle" }, input,
        el("span", { class: "swatch", style: "background:" + st.colour }),
        el("span", { text: st.label }), el("span", { class: "count", "data-count": k, text: "0" })));
    }
    const legend = $("condition-legend");
    const present = new Map();
    const cond = D.residents.condition;
    for (let i = 0; i < cond.length; i++) present.set(cond[i], (present.get(cond[i]) || 0) + 1);
    [...present.keys()].sort((a, b) => a - b).forEach((code) => {
      legend.append(el("div", { class: "toggle" },
        el("span", { class: "dot", style: "background:" + conditionColour(code) }),
        el("span", { text: conditionLabel(code) }),
        el("span", { class: "count", text: present.get(code) + " ever" })));
    });
    legend.append(el("p", { class: "hint", text: "Conditions " + D.residents.conditionSource + "." }));
    if (D.residents.policyNames.length > 1) {
      legend.append(el("p", { class: "hint", id: "policy-legend" }, "Policies: ",
        ...D.residents.policyNames.flatMap((p, k) => [k ? ", " : "", policySwatch(p),
          p + (k > 0 ? " (dark outline)" : "")])));
    }
  }
  function updateDayFacts(drawn) {
    const di = S.dayIndex, c = D.census;
    const rows = [["day", D.days[di] + " of " + D.maxDays], ["living (end of day)", c.population[di]],
      ["acting (start of day)", c.acting[di]], ["births", c.births[di]], ["deaths", c.deaths[di]],
      ["wealth mean / median", fmt(c.wealth_mean[di]) + " / " + fmt(c.wealth_median[di])],
      ["Gini", fmt(c.gini[di], 3)], ["production", fmt(c.production[di])],
      ["alliances", c.alliances[di]], ["information coverage", fmt(c.ic[di], 3)],
      ["residents drawn", drawn.residents]];
    const table = $("day-facts");
    table.replaceChildren(...rows.map(([k, v]) => el("tr", null, el("td", { text: k }),
      el("td", { text: String(v), "data-fact": k }))));
    for (const k of EDGE_KINDS) {
      const node = document.querySelector('[data-count="' + k + '"]');
      if (node) node.textContent = String(drawn[k]);
    }
  }

  // ---------- day ----------
  function setDayIndex(di) {
    di = Math.max(0, Math.min(D.nDays - 1, di | 0));
    S.dayIndex = di;
    viewer.day = D.days[di];
    const slider = $("day");
    if (Number(slider.value) !== di + 1) slider.value = String(di + 1);
    $("day-number").textContent = String(D.days[di]);
    $("day-label").textContent = "day " + D.days[di] + " (" + (di + 1) + " of " + D.nDays + " recorded)";
    scheduleDraw();
    if ($("behaviour-today").checked) { S.page = 0; renderBehaviours(); }
  }
  let pending = false;
  function scheduleDraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawGraph(); drawCharts(); });
  }
  viewer.setDay = function (day) {
    const di = D.days.indexOf(Number(day));
    if (di < 0) throw new Error("day " + day + " is not in the log");
    setDayIndex(di);
    drawGraph(); drawCharts(); // synchronous, so callers can read viewer.drawn at once
    return viewer.drawn;
  };

  // ---------- behaviours ----------
  const PAGE_SIZE = 50;
  function describe(row, self) {
    const E = D.events, k = D.kinds[E.kind[row]], amt = E.amount[row], f = E.flag[row];
    const i = E.actor[row], j = E.target[row];
    const who = (x) => name(x);
    switch (k) {
      case "work": return "worked at factory " + E.factory[row] + ": +" + fmt(amt);
      case "explore": return (f & 1) ? "explored: found factory " + E.factory[row] : (f & 2) ? "explored: found " + fmt(amt) : "explored: nothing";
      case "upgrade_self": return "trained: skill now " + fmt(amt);
      case "upgrade_factory": return "upgraded factory " + E.factory[row] + " to capacity " + fmt(amt);
      case "idle": return "idled";
      case "outage": return "factory " + E.factory[row] + " had an outage";
      case "gift": return self === j ? "received " + fmt(amt) + " from " + who(i) : "gave " + fmt(amt) + " to " + who(j);
      case "attack": {
        const how = ((f & 1) ? "won, loot " + fmt(amt) : "failed") + ((f & 2) ? ", on an ally" : "");
        return self === j ? "attacked by " + who(i) + " (" + how + ")" : "attacked " + who(j) + " (" + how + ")";
      }
      case "merge_proposal": return self === j ? "alliance proposal from " + who(i) : "proposed an alliance to " + who(j);
      case "alliance_formed": return "alliance formed: " + who(i) + " + " + who(j);
      case "alliance_dissolved": return "alliance ended: " + who(i) + " + " + who(j);
      case "message": return (self === j ? "message from " + who(i) : "message to " + (j < 0 ? "everyone" : who(j))) + ': "' + textOf(row) + '"';
      case "birth": return self === j ? "born to " + who(i) : "had a newcomer, " + who(j);
      case "death": return "starved (wealth " + fmt(amt) + ")";
      case "invalid": return "invalid action: " + textOf(row);
      default: return k;
    }
  }
  function residentLink(i) {
    if (i < 0) return el("span", { text: "-" });
    const a = el("a", { href: "#timeline", text: name(i), class: "resident-link", "data-resident": String(i) });
    a.addEventListener("click", (ev) => { ev.preventDefault(); selectResident(i, true); });
    return a;
  }
  function dayLink(row) {
    const di = dayIndexOfRow(row);
    const a = el("a", { href: "#community", text: "day " + D.days[di], class: "day-link",
      "data-day": String(D.days[di]), "data-row": String(row) });
    a.addEventListener("click", (ev) => {
      ev.preventDefault(); S.markRow = row; setDayIndex(di);
      $("community").scrollIntoView({ block: "start" });
    });
    return a;
  }
  function buildBehaviours() {
    const totals = D.behaviourNames.map(() => 0);
    for (const bits of D.behaviours.bits) D.behaviourNames.forEach((_, k) => { if (bits & (1 << k)) totals[k]++; });
    $("behaviour-counts").replaceChildren(...D.behaviourNames.map((b, k) => el("span", null,
      badge(b),
      el("span", { text: String(totals[k]), "data-behaviour-total": b }))));
    const select = $("behaviour-filter");
    select.append(el("option", { value: "all", text: "all" }));
    D.behaviourNames.forEach((b) => select.append(el("option", { value: b, text: behaviourLabel(b) })));
    select.addEventListener("change", () => { S.page = 0; renderBehaviours(); });
    $("behaviour-today").addEventListener("change", () => { S.page = 0; renderBehaviours(); });
    $("behaviour-prev").addEventListener("click", () => { S.page = Math.max(0, S.page - 1); renderBehaviours(); });
    $("behaviour-next").addEventListener("click", () => { S.page++; renderBehaviours(); });
    S.page = 0;
    renderBehaviours();
  }
  function renderBehaviours() {
    const filter = $("behaviour-filter").value;
    const bit = filter === "all" ? 0xff : 1 << D.behaviourNames.indexOf(filter);
    const today = $("behaviour-today").checked;
    const e0 = D.events.off[S.dayIndex], e1 = D.events.off[S.dayIndex + 1];
    const rows = D.behaviours.rows, bits = D.behaviours.bits;
    const match = [];
    for (let k = rows.length - 1; k >= 0; k--) { // newest first
      if (!(bits[k] & bit)) continue;
      if (today && (rows[k] < e0 || rows[k] >= e1)) continue;
      match.push(k);
    }
    const pages = Math.max(1, Math.ceil(match.length / PAGE_SIZE));
    S.page = Math.min(S.page, pages - 1);
    const slice = match.slice(S.page * PAGE_SIZE, (S.page + 1) * PAGE_SIZE);
    $("behaviour-page").textContent = match.length + " events, page " + (S.page + 1) + " of " + pages;
    const body = $("behaviour-table").tBodies[0];
    body.replaceChildren(...slice.map((k) => {
      const row = rows[k];
      const badges = el("td");
      D.behaviourNames.forEach((b, n) => { if (bits[k] & (1 << n)) badges.append(badge(b)); });
      return el("tr", { "data-row": String(row) }, el("td", null, dayLink(row)), badges,
        el("td", null, residentLink(D.events.actor[row])), el("td", null, residentLink(D.events.target[row])),
        el("td", { text: describe(row, D.events.actor[row]) }));
    }));
  }

  // ---------- timelines ----------
  function selectResident(i, scroll) {
    if (!(i >= 0 && i < D.residents.n)) {
      $("timeline-body").replaceChildren(el("p", { class: "hint",
        text: "No resident " + i + " in this run (0 to " + (D.residents.n - 1) + ")." }));
      return;
    }
    S.selected = i;
    $("resident-input").value = name(i);
    renderTimeline(i);
    scheduleDraw();
    if (scroll) $("timeline").scrollIntoView({ block: "start" });
  }
  function renderTimeline(i) {
    const R = D.residents, E = D.events;
    const byDay = new Map();
    const push = (di, node) => { if (!byDay.has(di)) byDay.set(di, []); byDay.get(di).push(node); };
    for (let di = 0; di < D.nDays; di++) {
      for (let row = E.off[di]; row < E.off[di + 1]; row++) {
        if (E.actor[row] !== i && E.target[row] !== i) continue;
        const text = describe(row, i);
        const item = el("li", { class: D.kinds[E.kind[row]] === "message" ? "msg" : "" , text });
        const bits = S.behaviourOfRow.get(row);
        if (bits) D.behaviourNames.forEach((b, n) => { if (bits & (1 << n)) item.append(" ", badge(b)); });
        push(di, item);
      }
    }
    const refl = D.reflections;
    for (let k = refl.agent.length - 1; k >= 0; k--) { // reflections open their day
      if (refl.agent[k] !== i) continue;
      const di = D.days.indexOf(refl.day[k]);
      if (di < 0) continue;
      if (!byDay.has(di)) byDay.set(di, []);
      byDay.get(di).unshift(el("li", { class: "reflection", text: D.strings[refl.label[k]] + ":\n" + D.strings[refl.text[k]] }));
    }
    const born = R.born[i], died = R.died[i];
    const facts = [["condition", conditionLabel(R.condition[i])],
      ["policy", R.policy[i] >= 0 ? R.policyNames[R.policy[i]] : "not recorded"],
      ["born", born === 0 ? "founder" : "day " + born + " to " + name(R.parent[i])],
      ["died", died ? "starved on day " + died : "alive at the end of the log"]];
    const head = el("table", { class: "facts" }, ...facts.map(([k, v]) => el("tr", null, el("td", { text: k }), el("td", { text: v }))));
    const days = [...byDay.keys()].sort((a, b) => a - b).map((di) => {
      const w = wealthAt(i, di);
      const link = el("a", { href: "#community", text: "day " + D.days[di], class: "day-link", "data-day": String(D.days[di]) });
      link.addEventListener("click", (ev) => { ev.preventDefault(); setDayIndex(di); $("community").scrollIntoView({ block: "start" }); });
      return el("div", { class: "tl-day", "data-day": String(D.days[di]) }, link,
        el("div", null, w === null ? null : el("div", { class: "hint", text: "wealth at end of day " + fmt(w) }),
          el("ul", null, ...byDay.get(di))));
    });
    $("timeline-body").replaceChildren(el("h3", { text: name(i), id: "timeline-name" }), head, ...days);
  }
  function buildTimelineControls() {
    const input = $("resident-input");
    const go = () => {
      const m = /(\d+)\s*$/.exec(input.value.trim());
      if (m) selectResident(Number(m[1]), false);
    };
    $("resident-show").addEventListener("click", go);
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
    const llm = [];
    for (let i = 0; i < D.residents.n && llm.length < 12; i++) if (D.residents.llm[i]) llm.push(i);
    if (llm.length) $("llm-residents").append("LLM residents with reflections: ", ...llm.flatMap((i) => [residentLink(i), " "]));
  }

  // ---------- summary ----------
  // What metrics.json's keys mean, for a reader (civa run prints the same names).
  const METRIC_LABELS = {
    status: "status", civa_version: "CIVA version", seed: "seed", condition: "value condition",
    prevalence: "prevalence (share of founders)", policy: "policy", days: "days logged",
    nAUP: "nAUP (population kept)", SC: "SC (social capital)", ED: "ED (1 - Gini)",
    IC: "IC (communication)", CC: "CC (output per resident-day)",
    autocorr_lag1: "lag-1 autocorrelation of the population", variance: "variance of the population",
    final_population: "final population", extinct_day: "extinct on day", resident_days: "resident-days",
    cooperation_per_resident_day: "cooperation per resident-day",
    betrayal_per_resident_day: "betrayal per resident-day",
  };
  const SECTION_LABELS = { behaviours: "Behaviours detected (events)",
    behaviour_rates: "Behaviours per resident-day", llm: "LLM decisions" };
  const GROUP_COLUMNS = { residents: "residents", founders: "founders", born: "born",
    alive_end: "alive at the end", survival: "survival", resident_days: "resident-days",
    mean_wealth_end: "mean wealth at the end" };
  const GROUP_TITLES = { by_policy: "by policy", by_condition: "by value condition" };
  function metricLabel(key, section) {
    if (section === "behaviours" || section === "behaviour_rates") return behaviourLabel(key);
    return METRIC_LABELS[key] || key.replace(/_/g, " ");
  }
  function valueText(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return fmt(v, 4);
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  function policySwatch(spec) {
    return el("span", { class: "dot", style: "background:" + policyColour(spec) });
  }
  function buildSummary() {
    $("summary-source").textContent = "From " + D.summarySource + ".";
    const rows = [];
    const row = (key, label, v) => rows.push(el("tr", null, el("td", { text: label }),
      el("td", { text: valueText(v), "data-metric": key })));
    for (const [k, v] of Object.entries(D.summary)) {
      if (v && typeof v === "object" && !Array.isArray(v)) {
        rows.push(el("tr", { class: "section" }, el("th", { colSpan: 2, text: SECTION_LABELS[k] || metricLabel(k) })));
        for (const [k2, v2] of Object.entries(v)) row(k + "." + k2, metricLabel(k2, k), v2);
      } else row(k, metricLabel(k), v);
    }
    $("summary-table").replaceChildren(...rows);
    $("config-json").textContent = JSON.stringify(D.config, null, 2);
    buildDiagnostics();
    const cols = Object.keys(GROUP_COLUMNS);
    const box = $("group-tables");
    for (const [key, groups] of Object.entries(D.groups || {})) {
      const names = Object.keys(groups);
      if (!names.length) continue;
      const bnames = D.behaviourNames;
      const head = el("tr", null, el("th", { text: GROUP_TITLES[key] || key.replace(/_/g, " ") }),
        ...cols.map((c) => el("th", { text: GROUP_COLUMNS[c] })),
        ...bnames.map((b) => el("th", { text: behaviourLabel(b) })));
      const codes = Object.fromEntries(Object.entries(D.conditionLabels).map(([c, l]) => [l, Number(c)]));
      const swatch = (n) => key === "by_policy" ? policySwatch(n)
        : el("span", { class: "dot", style: "background:" + conditionColour(n in codes ? codes[n] : -1) });
      const body = names.map((n) => el("tr", null, el("td", { class: "group-name" }, swatch(n), n),
        ...cols.map((c) => el("td", { text: fmt(groups[n][c], 3) })),
        ...bnames.map((b) => el("td", { text: fmt((groups[n].behaviours || {})[b]) }))));
      // Wide tables scroll on their own in a narrow window, not the whole page.
      box.append(el("div", { class: "table-scroll" },
        el("table", { class: "list", id: "table-" + key }, el("thead", null, head), el("tbody", null, ...body))));
    }
  }
  // LLM behaviour diagnostics (metrics.json llm.diagnostics): each LLM policy beside a
  // random valid resident on the same legal facts, then the warnings.
  const DIAGNOSTIC_ROWS = [
    ["answers", (f) => f.answers], ["decisions", (f) => f.decisions], ["messages", (f) => f.messages],
    ["echo rate", (f) => f.echo_rate], ["duplicate message rate", (f) => f.duplicate_message_rate],
    ["first-option rate", (f) => f.first_option_rate], ["chance rate", (f) => f.chance_rate],
    ["primary entropy (bits)", (f) => f.action_entropy && f.action_entropy.primary],
    ["secondary entropy (bits)", (f) => f.action_entropy && f.action_entropy.secondary],
    ["pair entropy (bits)", (f) => f.action_entropy && f.action_entropy.pair],
  ];
  function buildDiagnostics() {
    const specs = Object.keys(D.llmDiagnostics || {});
    if (!specs.length) return;
    const cols = specs.flatMap((s) => [[s, D.llmDiagnostics[s].figures],
      [s + ": random valid", D.llmDiagnostics[s].figures.reference || {}]]);
    const head = el("tr", null, el("th", { text: "LLM diagnostics" }), ...cols.map(([n]) => el("th", { text: n })));
    const body = DIAGNOSTIC_ROWS.map(([label, get]) => el("tr", null, el("td", { text: label }),
      ...cols.map(([, f]) => el("td", { text: fmt(get(f), 3) }))));
    const warned = specs.flatMap((s) => D.llmDiagnostics[s].warnings.map((w) => el("li", { text: s + ": " + w })));
    $("llm-diagnostics").append(el("h3", { text: "LLM behaviour diagnostics" }),
      el("div", { class: "table-scroll" },
        el("table", { class: "list", id: "table-llm-diagnostics" }, el("thead", null, head), el("tbody", null, ...body))),
      warned.length ? el("ul", { class: "warnings", id: "llm-warnings" }, ...warned) : null);
  }
  // The sticky header's height, for the scroll offset of links and sticky table heads.
  function headerHeight() {
    const header = document.querySelector("header");
    const set = () => document.documentElement.style.setProperty("--header-h", header.offsetHeight + "px");
    set();
    window.addEventListener("resize", set);
  }
  function banners() {
    const box = $("banners");
    const add = (text, cls, id) => box.append(el("div", { class: "banner " + (cls || ""), text, id }));
    if (D.partial) {
      add("The event log ends early: " + D.partial + ". Showing the " + D.nDays + " complete day" +
        (D.nDays === 1 ? "" : "s") + (D.nDays ? " (last complete day: " + D.days[D.nDays - 1] + ")" : "") +
        " of " + D.maxDays + ".", "", "partial-banner");
    }
    if (D.incomplete) add(D.incomplete, "", "incomplete-banner");
    for (const n of D.notes) add(n);
  }

  // ---------- start ----------
  function start() {
    D = unpack(JSON.parse($("civa-data").textContent));
    P = D.palette;
    headerHeight();
    viewer.nDays = D.nDays;
    banners();
    if (D.nDays === 0) {
      $("banners").append(el("div", { class: "banner error", text: "No complete day in the event log: nothing to draw." }));
      viewer.ready = true; viewer.initMs = performance.now() - T0;
      return;
    }
    prepare();
    S.markRow = null; S.selected = null; S.dayIndex = 0;
    const slider = $("day");
    slider.max = String(D.nDays);
    slider.addEventListener("input", () => { S.markRow = null; setDayIndex(Number(slider.value) - 1); });
    $("prev").addEventListener("click", () => setDayIndex(S.dayIndex - 1));
    $("next").addEventListener("click", () => setDayIndex(S.dayIndex + 1));
    let timer = null;
    $("play").addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; $("play").innerHTML = "&#9654;"; return; }
      if (S.dayIndex >= D.nDays - 1) setDayIndex(0);
      $("play").innerHTML = "&#10074;&#10074;";
      timer = setInterval(() => {
        if (S.dayIndex >= D.nDays - 1) { clearInterval(timer); timer = null; $("play").innerHTML = "&#9654;"; return; }
        setDayIndex(S.dayIndex + 1);
      }, 400);
    });
    for (const id of ["chart-population", "chart-wealth", "chart-gini", "chart-actions"]) $(id).addEventListener("click", chartClick);
    const canvas = $("graph"), tip = $("tooltip");
    canvas.addEventListener("click", (ev) => { const i = residentAt(ev.clientX, ev.clientY); if (i >= 0) selectResident(i, false); });
    canvas.addEventListener("mousemove", (ev) => {
      const i = residentAt(ev.clientX, ev.clientY);
      if (i < 0) { tip.hidden = true; return; }
      const rect = canvas.getBoundingClientRect();
      tip.hidden = false;
      tip.textContent = name(i) + " | " + conditionLabel(D.residents.condition[i]) + " | wealth " + fmt(wealthAt(i, S.dayIndex));
      tip.style.left = (ev.clientX - rect.left + 12) + "px"; tip.style.top = (ev.clientY - rect.top + 12) + "px";
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    window.addEventListener("resize", scheduleDraw);
    legend($("actions-key"), Object.keys(D.actions).map((k) => [kindLabel(k), actionColour(k)]));
    legend($("wealth-key"), [["mean", P.series.wealth_mean], ["median", P.series.wealth_median]]);
    buildSide();
    buildBehaviours();
    buildTimelineControls();
    buildSummary();
    setDayIndex(0);
    drawGraph(); drawCharts();
    viewer.ready = true;
    viewer.initMs = performance.now() - T0;
    document.body.setAttribute("data-ready", "1");
  }
  try {
    start();
  } catch (err) {
    viewer.error = String(err && err.stack || err);
    const box = document.getElementById("banners");
    if (box) box.append(el("div", { class: "banner error", text: "The viewer failed: " + err }));
    throw err;
  }
})();
