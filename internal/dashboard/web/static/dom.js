// Small DOM helpers. Text always goes in as text nodes: request paths and names
// come from the network and are never parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// el makes an HTML element: el("td", {class: "num"}, "12").
export function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// svg makes an SVG element.
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

// Formatting of the golden signals.
export function fmtRPS(v) {
  if (v === undefined || v === null) return "-";
  if (v === 0) return "0";
  if (v < 0.1) return v.toFixed(3);
  if (v < 10) return v.toFixed(2);
  return v.toFixed(1);
}

export function fmtPct(v) {
  if (v === undefined || v === null) return "-";
  const p = v * 100;
  return (p === 100 ? "100" : p >= 99.95 ? "99.9" : p.toFixed(1)) + "%";
}

export function fmtMs(v) {
  if (v === undefined || v === null) return "-";
  if (v === 0) return "0";
  if (v < 1) return v.toFixed(2) + "ms";
  if (v < 1000) return (v < 10 ? v.toFixed(1) : v.toFixed(0)) + "ms";
  return (v / 1000).toFixed(2) + "s";
}

// health classifies a success rate: ok, warn, bad, or idle without traffic.
export function health(successRate, requests) {
  if (!requests || successRate === null || successRate === undefined) return "idle";
  if (successRate >= 0.99) return "ok";
  if (successRate >= 0.95) return "warn";
  return "bad";
}
