// DOM helpers: element builders, HiDPI canvases, the shared tooltip and
// number formats. Everything is built with createElement/textContent, never
// innerHTML, so run names, site names and messages are shown as plain text.

const SVG_NS = "http://www.w3.org/2000/svg";

function setAttributes(node, attrs, svgMode) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") {
      if (svgMode) node.setAttribute("class", value);
      else node.className = value;
    } else if (key === "text") {
      node.textContent = value;
    } else if (key === "dataset") {
      for (const [name, data] of Object.entries(value)) node.dataset[name] = data;
    } else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: el("div", {class: "x", onclick: f}, child, "text"). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs, false);
  append(node, children);
  return node;
}

/** An SVG element, same call shape as el(). */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttributes(node, attrs, true);
  append(node, children);
  return node;
}

/** A canvas of width x height CSS pixels, sharp on HiDPI screens. */
export function hidpiCanvas(width, height, attrs) {
  const canvas = el("canvas", attrs);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [canvas, context];
}

/** The content width of a laid-out element (its width less its padding). */
export function contentWidth(node) {
  const style = getComputedStyle(node);
  const width =
    node.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return Math.max(120, Math.floor(width));
}

/** The (column, row) of a grid of columns x rows drawn over `node`, under the pointer. */
export function pointerCell(event, node, columns, rows = 1) {
  const box = node.getBoundingClientRect();
  const clamp = (value, count) => Math.min(count - 1, Math.max(0, Math.floor(value * count)));
  return [
    clamp((event.clientX - box.left) / box.width, columns),
    clamp((event.clientY - box.top) / box.height, rows),
  ];
}

// ------------------------------------------------------------------ tooltip
// One #tooltip for the whole app, fixed-positioned next to the pointer (or
// next to the focused element when shown from the keyboard).

function tooltipNode() {
  return document.getElementById("tooltip");
}

export function showTooltip(anchor, ...content) {
  const tip = tooltipNode();
  if (!tip) return;
  tip.replaceChildren();
  append(tip, content);
  tip.hidden = false;
  let x;
  let y;
  if (anchor instanceof Element) {
    const box = anchor.getBoundingClientRect();
    x = box.right;
    y = box.bottom;
  } else {
    x = anchor.clientX;
    y = anchor.clientY;
  }
  const margin = 12;
  const width = tip.offsetWidth;
  const height = tip.offsetHeight;
  const viewWidth = document.documentElement.clientWidth;
  const viewHeight = document.documentElement.clientHeight;
  let left = x + margin;
  let top = y + margin;
  if (left + width > viewWidth - 4) left = Math.max(4, x - margin - width);
  if (top + height > viewHeight - 4) top = Math.max(4, y - margin - height);
  tip.style.left = `${left}px`;
  tip.style.top = `${top}px`;
}

export function hideTooltip() {
  const tip = tooltipNode();
  if (tip) tip.hidden = true;
}

/** A tooltip line: a muted key and its value. */
export function tipRow(key, value) {
  const keyNode = el("span", { class: "tip-key", text: key });
  return el("div", { class: "tip-row" }, keyNode, value);
}

// ------------------------------------------------------------------ formats

/** A fraction as a percentage with one decimal: 0.625 -> "62.5%". */
export function percent(fraction) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return "–";
  return `${(fraction * 100).toFixed(1)}%`;
}

/** A fraction as a short percentage for labels: 0.625 -> "63%". */
export function shortPercent(fraction) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return "–";
  return `${Math.round(fraction * 100)}%`;
}

/** A number for axes and tooltips: integers plain, others with 3 digits. */
export function number(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (Number.isInteger(value)) return String(value);
  if (Math.abs(value) >= 100) return value.toFixed(0);
  return String(parseFloat(value.toPrecision(3))); // 0.500 -> "0.5"
}

/** "step 3" or, for a downsampled column, "steps 100–199". */
export function stepLabel(range) {
  const [first, last] = range;
  return first === last ? `step ${last}` : `steps ${first}–${last}`;
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}
