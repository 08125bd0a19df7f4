// Colour scales and their legends.
// - Dead fraction (overview, small multiples): pale green (all alive) through
//   yellow and orange to dark red (all dead); luminance falls monotonically,
//   so the scale also reads in grey. No value: light grey, hatched.
// - Firing rate (units map): viridis, 0 (never fires) dark purple to 1
//   yellow; NaN units pink, outside the scale.

import { el } from "./dom.js";

const DEAD_STOPS = [
  [0.0, "#edf6e8"],
  [0.1, "#fdefa6"],
  [0.3, "#fdc45b"],
  [0.5, "#f78b35"],
  [0.75, "#d9432a"],
  [1.0, "#8e1024"],
];

const RATE_STOPS = [
  [0.0, "#440154"],
  [0.125, "#472d7b"],
  [0.25, "#3b528b"],
  [0.375, "#2c728e"],
  [0.5, "#21918c"],
  [0.625, "#28ae80"],
  [0.75, "#5ec962"],
  [0.875, "#addc30"],
  [1.0, "#fde725"],
];

export const NAN_COLOR = "#ec407a";
export const NULL_COLOR = "#e4e4e4";
export const NULL_HATCH = "#b8b8b8";
export const FIX_COLOR = "#1976d2";

function hexToRgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

/** 256 RGB triples interpolated between the stops. */
function lookupTable(stops) {
  const rgbStops = stops.map(([at, hex]) => [at, hexToRgb(hex)]);
  const table = [];
  for (let index = 0; index < 256; index += 1) {
    const t = index / 255;
    let upper = 1;
    while (upper < rgbStops.length - 1 && rgbStops[upper][0] < t) upper += 1;
    const [a, ca] = rgbStops[upper - 1];
    const [b, cb] = rgbStops[upper];
    const w = b === a ? 0 : (t - a) / (b - a);
    table.push(ca.map((c, i) => Math.round(c + (cb[i] - c) * w)));
  }
  return table;
}

const DEAD_TABLE = lookupTable(DEAD_STOPS);
const RATE_TABLE = lookupTable(RATE_STOPS);

function pick(table, value) {
  const clamped = Math.min(1, Math.max(0, value));
  // Only exactly 0 and exactly 1 take the ends of the scale: a unit that
  // fired once is not coloured as one that never fired.
  const index = Math.min(254, Math.max(1, Math.round(clamped * 255)));
  return table[clamped === 0 ? 0 : clamped === 1 ? 255 : index];
}

/** [r, g, b] for a dead fraction in [0, 1]. */
export const deadRgb = (fraction) => pick(DEAD_TABLE, fraction);
/** [r, g, b] for a firing rate in [0, 1]. */
export const rateRgb = (rate) => pick(RATE_TABLE, rate);

export function css(rgb) {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

/** A canvas pattern of grey diagonal hatching: "no value here". */
export function hatchPattern(context) {
  const tile = document.createElement("canvas");
  tile.width = 6;
  tile.height = 6;
  const t = tile.getContext("2d");
  t.fillStyle = NULL_COLOR;
  t.fillRect(0, 0, 6, 6);
  t.strokeStyle = NULL_HATCH;
  t.lineWidth = 1;
  t.beginPath();
  t.moveTo(0, 6);
  t.lineTo(6, 0);
  t.moveTo(-1, 1);
  t.lineTo(1, -1);
  t.moveTo(5, 7);
  t.lineTo(7, 5);
  t.stroke();
  return context.createPattern(tile, "repeat");
}

function gradient(stops) {
  return `linear-gradient(to right, ${stops
    .map(([at, hex]) => `${hex} ${at * 100}%`)
    .join(", ")})`;
}

function swatch(className, label) {
  return el(
    "span",
    { class: "legend-item" },
    el("span", { class: `swatch ${className}`, "aria-hidden": "true" }),
    label,
  );
}

function scaleBar(stops, title, left, right) {
  return el(
    "span",
    { class: "legend-scale" },
    el("span", { class: "legend-title", text: title }),
    el("span", { class: "legend-end", text: left }),
    el("span", {
      class: "legend-bar",
      style: `background: ${gradient(stops)}`,
      "aria-hidden": "true",
    }),
    el("span", { class: "legend-end", text: right }),
  );
}

/** Legend of the dead-fraction scale, the no-value hatch and the fix marker. */
export function deadLegend({ fixes = true } = {}) {
  return el(
    "div",
    { class: "legend", role: "note", "aria-label": "colour scale" },
    scaleBar(DEAD_STOPS, "Dead units", "0%", "100%"),
    swatch("swatch-null", "no value"),
    fixes ? swatch("swatch-fix", "fix applied (hover for diagnosis)") : null,
  );
}

/** Legend of the firing-rate scale and the NaN colour. */
export function rateLegend() {
  return el(
    "div",
    { class: "legend", role: "note", "aria-label": "colour scale" },
    scaleBar(RATE_STOPS, "Firing rate", "0", "1"),
    swatch("swatch-nan", "NaN unit"),
    swatch("swatch-null", "no value"),
  );
}
