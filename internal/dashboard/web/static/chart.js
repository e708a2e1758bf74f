// Line charts and sparklines of the services' history, drawn as SVG.

import { svg } from "./dom.js";

// sparkline is a small line of values (nulls are gaps), scaled to its own range.
export function sparkline(values, { width = 120, height = 26, cls = "" } = {}) {
  const root = svg("svg", { class: `spark ${cls}`, width, height, viewBox: `0 0 ${width} ${height}` });
  const nums = values.filter((v) => v !== null && v !== undefined);
  if (nums.length < 2) return root;
  const hi = Math.max(...nums), lo = Math.min(0, ...nums);
  const span = hi - lo || 1;
  const x = (i) => (i / (values.length - 1)) * (width - 2) + 1;
  const y = (v) => height - 2 - ((v - lo) / span) * (height - 4);
  root.append(svg("path", { class: "line", d: path(values, x, y) }));
  return root;
}

// path draws values as a polyline, broken where a value is missing.
function path(values, x, y) {
  let d = "", pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  return d;
}

// lineChart draws one or more series over time with axes: points are
// [{t, ...}], series [{key, label, cls}], fmt formats the y axis.
// yMin and yMax fix the y range (yMin is lowered to the lowest value); by default
// it runs from 0 to the highest value.
export function lineChart(points, series, { title, fmt, width = 320, height = 150, yMin, yMax } = {}) {
  const padL = 52, padR = 10, padT = 22, padB = 22;
  const root = svg("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, "data-chart": title });
  root.append(svg("text", { class: "chart-title", x: padL, y: 14 }, title));
  const ts = points.map((p) => Date.parse(p.t));
  const vals = series.flatMap((s) => points.map((p) => p[s.key])).filter((v) => v !== null && v !== undefined);
  const w = width - padL - padR, h = height - padT - padB;
  root.append(svg("rect", { class: "plot", x: padL, y: padT, width: w, height: h }));
  if (points.length < 2 || !vals.length) {
    root.append(svg("text", { class: "nodata", x: padL + w / 2, y: padT + h / 2 + 4, "text-anchor": "middle" }, "no traffic yet"));
    return root;
  }
  const t0 = ts[0], t1 = ts[ts.length - 1];
  let hi = yMax !== undefined ? yMax : Math.max(...vals);
  if (hi <= 0) hi = 1;
  const lo = yMin !== undefined ? Math.min(yMin, ...vals) : 0;
  const x = (i) => padL + ((ts[i] - t0) / (t1 - t0 || 1)) * w;
  const y = (v) => padT + h - ((v - lo) / (hi - lo || 1)) * h;
  for (const f of [0, 0.5, 1]) {
    const v = lo + (hi - lo) * f, yy = y(v);
    root.append(svg("line", { class: "grid", x1: padL, x2: padL + w, y1: yy, y2: yy }));
    root.append(svg("text", { class: "axis", x: padL - 4, y: yy + 4, "text-anchor": "end" }, fmt(v)));
  }
  const ago = Math.round((t1 - t0) / 60000);
  root.append(svg("text", { class: "axis", x: padL, y: height - 6 }, ago ? `-${ago}m` : "-" + Math.round((t1 - t0) / 1000) + "s"));
  root.append(svg("text", { class: "axis", x: padL + w, y: height - 6, "text-anchor": "end" }, "now"));
  series.forEach((s, si) => {
    const vs = points.map((p) => p[s.key]);
    root.append(svg("path", { class: `line ${s.cls}`, d: path(vs, x, y) }));
    // The latest value, as a dot: visible even when it is the only one.
    const last = vs.findLastIndex((v) => v !== null && v !== undefined);
    if (last >= 0) root.append(svg("circle", { class: `pt ${s.cls}`, cx: x(last), cy: y(vs[last]), r: 2.5 }));
    if (series.length > 1) {
      const lx = padL + w - 4 - (series.length - 1 - si) * 44;
      root.append(svg("text", { class: `legend ${s.cls}`, x: lx, y: 14, "text-anchor": "end" }, s.label));
    }
  });
  return root;
}
