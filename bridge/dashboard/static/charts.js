// Charts drawn as SVG, one element per bucket (a <g class="point">), each with its
// values in a <title> and in a tooltip on hover; from the keyboard, a chart takes the
// focus once and the arrow keys move from bucket to bucket.

const NS = "http://www.w3.org/2000/svg";
const W = 600, H = 200, PAD = { l: 44, r: 8, t: 8, b: 22 };

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function frame(container, label, tooltip) {
  container.replaceChildren();
  keyboard(container, tooltip);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "aria-label": label });
  container.appendChild(svg);
  return svg;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axes(svg, max, fmt, labels) {
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
  el("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "axis" }, svg);
  for (const f of [0, 0.5, 1]) {
    const y = y0 - f * (y0 - y1);
    el("line", { x1: x0, x2: x1, y1: y, y2: y, class: "axis", "stroke-dasharray": f ? "2 3" : "" }, svg);
    el("text", { x: x0 - 4, y: y + 3, "text-anchor": "end" }, svg).textContent = fmt(max * f);
  }
  const n = labels.length;
  const every = Math.max(1, Math.ceil(n / 6));
  labels.forEach((text, i) => {
    if (i % every) return;
    const x = x0 + ((i + 0.5) * (x1 - x0)) / n;
    el("text", { x, y: H - 6, "text-anchor": "middle" }, svg).textContent = text;
  });
}

function showTip(tooltip, text, x, y) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  tooltip.style.left = `${Math.max(8, Math.min(x + 12, window.innerWidth - tooltip.offsetWidth - 8))}px`;
  tooltip.style.top = `${y + 12}px`;
}

function hover(node, text, tooltip) {
  el("title", {}, node).textContent = text;
  node.dataset.tip = text;
  node.addEventListener("mousemove", (e) => showTip(tooltip, text, e.clientX, e.clientY));
  node.addEventListener("mouseleave", () => { tooltip.hidden = true; });
}

// Arrow keys (Home, End) walk the buckets of a focused chart, showing each one's values.
function keyboard(container, tooltip) {
  container.tabIndex = 0;
  let at = -1;
  container.onkeydown = (e) => {
    const points = container.querySelectorAll("g.point");
    if (!points.length) return;
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: points.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    if (at >= 0 && points[at]) points[at].classList.remove("active");
    at = Math.max(0, Math.min(points.length - 1, at < 0 && e.key === "ArrowLeft" ? points.length - 1 : moves[e.key]));
    const point = points[at];
    point.classList.add("active");
    const box = point.getBoundingClientRect();
    showTip(tooltip, point.dataset.tip, box.x + box.width / 2, box.y);
  };
  container.onblur = () => {
    tooltip.hidden = true;
    for (const p of container.querySelectorAll("g.point.active")) p.classList.remove("active");
    at = -1;
  };
}

function empty(svg) {
  el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, svg).textContent = "No runs in this window";
}

// Stacked bars: `stacks` is [{key, label}], each bucket a {key: value} object.
export function stackedBars(container, buckets, stacks, labelOf, tooltip, fmt) {
  const svg = frame(container, "stacked bars", tooltip);
  const totals = buckets.map((b) => stacks.reduce((s, k) => s + (b[k.key] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const labels = buckets.map(labelOf);
  axes(svg, max, fmt, labels);
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, h = y0 - PAD.t;
  const bw = (x1 - x0) / Math.max(1, buckets.length);
  buckets.forEach((b, i) => {
    const g = el("g", { class: "point", "data-index": i, "data-total": totals[i] }, svg);
    let y = y0;
    for (const s of stacks) {
      const v = b[s.key] || 0;
      if (!v) continue;
      const bh = (v / max) * h;
      y -= bh;
      el("rect", { x: x0 + i * bw + bw * 0.1, y, width: Math.max(0.5, bw * 0.8), height: bh, class: `fill-${s.css || s.key}` }, g);
    }
    el("rect", { x: x0 + i * bw, y: PAD.t, width: bw, height: h, class: "hit" }, g);
    const parts = stacks.map((s) => `${s.label}: ${fmt(b[s.key] || 0)}`).join("\n");
    hover(g, `${labels[i]}\ntotal: ${fmt(totals[i])}\n${parts}`, tooltip);
  });
  if (!totals.some(Boolean)) empty(svg);
}

// Lines on a log scale (durations span µs to minutes): `lines` is [{key, label, css}];
// buckets that `present` rejects (no runs) leave gaps.
export function logLines(container, buckets, lines, labelOf, tooltip, fmt, present) {
  const svg = frame(container, "lines", tooltip);
  const values = buckets.filter(present).flatMap((b) => lines.map((l) => b[l.key] || 0)).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...values, 1e6)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values, 1e7))));
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, h = y0 - PAD.t;
  el("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "axis" }, svg);
  const every = Math.ceil((hi - lo) / 5);
  for (let d = lo; d <= hi; d += every) {
    const y = y0 - ((d - lo) / (hi - lo)) * h;
    el("line", { x1: x0, x2: x1, y1: y, y2: y, class: "axis", "stroke-dasharray": "2 3" }, svg);
    el("text", { x: x0 - 4, y: y + 3, "text-anchor": "end" }, svg).textContent = fmt(10 ** d);
  }
  const labels = buckets.map(labelOf);
  const n = labels.length, step = Math.max(1, Math.ceil(n / 6));
  labels.forEach((text, i) => {
    if (i % step) return;
    el("text", { x: x0 + ((i + 0.5) * (x1 - x0)) / n, y: H - 6, "text-anchor": "middle" }, svg).textContent = text;
  });
  const bw = (x1 - x0) / Math.max(1, n);
  const xy = (i, v) => [x0 + (i + 0.5) * bw, y0 - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * h];
  for (const l of lines) {
    let run = [];
    const flush = () => {
      if (run.length) el("polyline", { points: run.join(" "), class: `line-${l.css || l.key}` }, svg);
      run = [];
    };
    buckets.forEach((b, i) => {
      if (!present(b)) { flush(); return; }
      run.push(xy(i, b[l.key] || 0).join(","));
    });
    flush();
  }
  buckets.forEach((b, i) => {
    const g = el("g", { class: "point", "data-index": i }, svg);
    if (present(b)) {
      for (const l of lines) {
        const [x, y] = xy(i, b[l.key] || 0);
        el("circle", { cx: x, cy: y, r: 2, class: `dot-${l.css || l.key}` }, g);
      }
    }
    el("rect", { x: x0 + i * bw, y: PAD.t, width: bw, height: h, class: "hit" }, g);
    const parts = present(b) ? lines.map((l) => `${l.label}: ${fmt(b[l.key] || 0)}`).join("\n") : "no runs";
    hover(g, `${labels[i]}\n${parts}`, tooltip);
  });
  if (!buckets.some(present)) empty(svg);
}

export function sparkline(values, label) {
  const w = 100, hgt = 24;
  const svg = el("svg", { viewBox: `0 0 ${w} ${hgt}`, class: "spark", role: "img", "aria-label": label });
  el("title", {}, svg).textContent = label;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 4)).toFixed(1)}`);
  el("polyline", { points: pts.join(" ") }, svg);
  svg.dataset.values = values.join(",");
  return svg;
}
