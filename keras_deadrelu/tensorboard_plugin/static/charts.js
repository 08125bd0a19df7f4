// SVG line charts over the columns of a run (one x position per column, so a
// chart lines up with a heatmap of the same width and margins), with
// reference lines, fix lines/markers and a hover read-out of every series.

import {
  el,
  hideTooltip,
  number,
  pointerCell,
  showTooltip,
  stepLabel,
  svg,
  tipRow,
} from "./dom.js";
import { fixMarker } from "./fixes.js";

const finite = (value) => value !== null && value !== undefined && Number.isFinite(value);

/** Round tick values covering [min, max], about `count` of them. */
export function niceTicks(min, max, count = 4) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  const end = max + step * 1e-9;
  for (let tick = Math.ceil(min / step - 1e-9) * step; tick <= end; tick += step) {
    ticks.push(Math.abs(tick) < step * 1e-9 ? 0 : tick);
  }
  return ticks;
}

/** Column indices to label on an x axis `width` pixels wide. */
export function xTickColumns(count, width) {
  const wanted = Math.max(1, Math.min(count, Math.floor(width / 64)));
  if (wanted === 1 || count === 1) return [count - 1];
  const columns = new Set();
  for (let j = 0; j < wanted; j += 1) {
    columns.add(Math.round((j * (count - 1)) / (wanted - 1)));
  }
  return [...columns];
}

function text(x, y, anchor, className, content) {
  return svg("text", { x, y, "text-anchor": anchor, class: className }, content);
}

/** An SVG x axis: step labels under the given columns. */
export function xAxis({ width, left, right, ranges, height = 18 }) {
  const count = ranges.length;
  const plotWidth = width - left - right;
  const x = (i) => left + ((i + 0.5) * plotWidth) / count;
  const axis = svg("svg", { class: "x-axis", width, height, "aria-hidden": "true" });
  axis.append(svg("line", { x1: left, x2: width - right, y1: 0.5, y2: 0.5, class: "axis-line" }));
  for (const column of xTickColumns(count, plotWidth)) {
    const tx = x(column);
    axis.append(
      svg("line", { x1: tx, x2: tx, y1: 0, y2: 4, class: "axis-line" }),
      text(tx, 14, "middle", "axis-text", String(ranges[column][1])),
    );
  }
  if (left >= 36) axis.append(text(left - 6, 14, "end", "axis-text axis-name", "step"));
  return axis;
}

/** Path data for values, broken at nulls. */
function pathData(values, x, y) {
  let data = "";
  let open = false;
  values.forEach((value, i) => {
    if (!finite(value)) {
      open = false;
      return;
    }
    data += `${open ? "L" : "M"}${x(i).toFixed(1)},${y(value).toFixed(1)}`;
    open = true;
  });
  return data;
}

/** The y domain: the data and reference lines, widened to round ticks. */
function yDomain(series, refLines, fixedMin, fixedMax) {
  if (fixedMin !== undefined && fixedMax !== undefined) return [fixedMin, fixedMax];
  const all = series
    .flatMap((s) => s.values)
    .concat(refLines.map((r) => r.y))
    .filter(finite);
  let low = fixedMin ?? (all.length ? Math.min(...all) : 0);
  let high = fixedMax ?? (all.length ? Math.max(...all) : 1);
  if (high - low < 1e-9) high = low + 1;
  const ticks = niceTicks(low, high, 4);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  low = Math.min(low, Math.floor(low / step) * step);
  high = Math.max(high, Math.ceil(high / step - 1e-9) * step);
  return [low, high];
}

/**
 * A line chart. Options:
 *   width, height; left/right/top/bottom margins (left/right match heatmaps);
 *   ranges: [[first, last] step] per column; series: [{name, values, color,
 *   dash, format}]; yMin/yMax (else from the data); yFormat; refLines:
 *   [{y, label}]; fixGroups (from groupFixes): dashed lines, and .fix-marker
 *   elements when fixMarkers is true; showXAxis; id; label (aria-label).
 */
export function lineChart(options) {
  const {
    width,
    height,
    left = 44,
    right = 12,
    top = 10,
    bottom = 20,
    ranges,
    series,
    yFormat = number,
    refLines = [],
    fixGroups = [],
    fixMarkers = false,
    showXAxis = true,
    id,
    label,
  } = options;
  const count = ranges.length;
  const plotWidth = Math.max(10, width - left - right);
  const plotHeight = Math.max(10, height - top - bottom);
  const [yMin, yMax] = yDomain(series, refLines, options.yMin, options.yMax);
  const x = (i) => left + ((i + 0.5) * plotWidth) / count;
  const y = (v) => top + plotHeight - ((v - yMin) / (yMax - yMin)) * plotHeight;
  const plotRight = left + plotWidth;
  const plotBottom = top + plotHeight;

  const root = svg("svg", {
    width,
    height,
    class: "chart-svg",
    role: "img",
    "aria-label": label || "chart",
  });
  // Grid, y labels, the baseline and the step labels.
  const tickCount = Math.max(2, Math.min(4, Math.floor(plotHeight / 24)));
  for (const tick of niceTicks(yMin, yMax, tickCount)) {
    const ty = y(tick);
    root.append(
      svg("line", { x1: left, x2: plotRight, y1: ty, y2: ty, class: "grid-line" }),
      text(left - 6, ty + 3.5, "end", "axis-text", yFormat(tick)),
    );
  }
  root.append(
    svg("line", { x1: left, x2: plotRight, y1: plotBottom + 0.5, y2: plotBottom + 0.5, class: "axis-line" }),
  );
  if (showXAxis) {
    for (const column of xTickColumns(count, plotWidth)) {
      root.append(text(x(column), plotBottom + 14, "middle", "axis-text", String(ranges[column][1])));
    }
  }
  // Reference lines (e.g. SELU's mean 0 and std 1).
  for (const ref of refLines) {
    const ry = y(ref.y);
    root.append(
      svg("line", { x1: left, x2: plotRight, y1: ry, y2: ry, class: "ref-line", "data-y": ref.y }),
      text(plotRight - 2, ry - 3, "end", "ref-text", ref.label),
    );
  }
  // A dashed line at each fix.
  for (const group of fixGroups) {
    const fx = x(group.column);
    root.append(svg("line", { x1: fx, x2: fx, y1: top, y2: plotBottom, class: "fix-line" }));
  }
  // The series; dots when the columns are few (or a point stands alone).
  for (const s of series) {
    root.append(
      svg("path", {
        d: pathData(s.values, x, y),
        class: "series-line",
        stroke: s.color,
        "stroke-dasharray": s.dash,
      }),
    );
    s.values.forEach((value, i) => {
      const alone = !finite(s.values[i - 1]) && !finite(s.values[i + 1]);
      if (finite(value) && (count <= 40 || alone)) {
        root.append(
          svg("circle", { cx: x(i), cy: y(value), r: 2.6, fill: s.color, class: "series-dot" }),
        );
      }
    });
  }
  // Hover: a guide at the column and a read-out of every series.
  const guide = svg("line", { y1: top, y2: plotBottom, class: "hover-guide", visibility: "hidden" });
  const hit = svg("rect", { x: left, y: top, width: plotWidth, height: plotHeight, class: "hit-area" });
  root.append(guide, hit);
  hit.addEventListener("mousemove", (event) => {
    const [column] = pointerCell(event, hit, count);
    guide.setAttribute("x1", x(column));
    guide.setAttribute("x2", x(column));
    guide.setAttribute("visibility", "visible");
    const readOut = series.map((s) => {
      const value = (s.format || yFormat)(s.values[column]);
      return tipRow(s.name, el("span", { class: "tip-value", style: `color:${s.color}`, text: value }));
    });
    showTooltip(event, el("div", { class: "tip-title", text: stepLabel(ranges[column]) }), readOut);
  });
  hit.addEventListener("mouseleave", () => {
    guide.setAttribute("visibility", "hidden");
    hideTooltip();
  });

  const style = `width:${width}px;height:${height}px`;
  const container = el("div", { class: "chart", id, style }, root);
  if (fixMarkers) {
    for (const group of fixGroups) container.append(fixMarker(group, x(group.column), top + 1));
  }
  return container;
}

/** A row of series swatches with each series' latest value. */
export function seriesLegend(series) {
  return el(
    "div",
    { class: "series-legend" },
    series.map((s) => {
      const values = s.values.filter(finite);
      const last = values.length ? values[values.length - 1] : null;
      return el(
        "span",
        { class: "legend-item" },
        el("span", {
          class: `series-swatch${s.dash ? " dashed" : ""}`,
          style: `border-color:${s.color}`,
          "aria-hidden": "true",
        }),
        s.name,
        el("span", { class: "legend-value", text: ` ${(s.format || number)(last)}` }),
      );
    }),
  );
}
