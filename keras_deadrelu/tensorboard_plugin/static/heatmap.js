// Canvas heatmaps. Cells are painted into an offscreen image with one pixel
// per cell, then scaled onto the visible canvas, so 100 sites x 1000 windows
// (or 1000 units x 1000 windows) cost one drawImage per strip, not one DOM
// node per cell. When there are more cells than screen pixels, each pixel
// shows the worst cell it covers (highest dead fraction, lowest firing rate,
// NaN first), so a short death or a single dead unit never drops out.
// Hover maps the pointer back to the exact (row, column).
//   siteHeatmap: the overview, one .heatmap-row per site.
//   miniHeatmap: one compact canvas per run for the comparison view.
//   unitMap:     a site's units x windows firing rates.

import { deadRgb, hatchPattern, NAN_COLOR, rateRgb } from "./colors.js";
import {
  el,
  hideTooltip,
  hidpiCanvas,
  percent,
  pointerCell,
  shortPercent,
  showTooltip,
  tipRow,
} from "./dom.js";
import { fixMarker, groupFixes } from "./fixes.js";

const isMissing = (value) => value === null || value === undefined || Number.isNaN(value);

/** Splits `count` cells into at most one bin per device pixel: [[start, end)]. */
function bins(count, pixels) {
  const n = Math.max(1, Math.min(count, Math.floor(pixels * (window.devicePixelRatio || 1))));
  const out = [];
  for (let b = 0; b < n; b += 1) {
    out.push([Math.floor((b * count) / n), Math.floor(((b + 1) * count) / n)]);
  }
  return out;
}

/** The highest non-missing value of row[start..end), or null. */
function worstHigh(row, [start, end]) {
  let worst = null;
  for (let i = start; i < end; i += 1) {
    const value = row[i];
    if (!isMissing(value) && (worst === null || value > worst)) worst = value;
  }
  return worst;
}

/** An offscreen canvas, one pixel per cell: rows x columns of colours. */
function cellImage(rows, columns, colourOf) {
  const image = document.createElement("canvas");
  image.width = Math.max(1, columns);
  image.height = Math.max(1, rows);
  const context = image.getContext("2d");
  const pixels = context.createImageData(image.width, image.height);
  const data = pixels.data;
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < columns; c += 1) {
      const rgb = colourOf(r, c);
      if (!rgb) continue; // transparent: painted as "no value" afterwards
      const at = (r * image.width + c) * 4;
      data[at] = rgb[0];
      data[at + 1] = rgb[1];
      data[at + 2] = rgb[2];
      data[at + 3] = 255;
    }
  }
  context.putImageData(pixels, 0, 0);
  return image;
}

/** White gaps between columns when they are wide enough to read one by one. */
function columnGaps(context, columns, width, height) {
  const cellWidth = width / columns;
  if (cellWidth < 6) return;
  context.fillStyle = "rgba(255, 255, 255, 0.9)";
  for (let c = 1; c < columns; c += 1) {
    context.fillRect(Math.round(c * cellWidth) - 0.5, 0, 1, height);
  }
}

/** Tooltip body for one overview cell. */
function cellTip(data, siteIndex, column) {
  const site = data.sites[siteIndex];
  const fraction = data.dead_fraction[siteIndex][column];
  const [first, last] = data.step_ranges[column];
  const grouped = data.downsampled && first !== last;
  const dead = data.dead[siteIndex][column];
  const units = data.units[siteIndex][column];
  return [
    el("div", { class: "tip-title" }, site.name, el("span", { class: "tip-muted", text: ` ${site.kind}` })),
    grouped
      ? tipRow("Steps", `${first}–${last} (worst window shown)`)
      : tipRow("Step", String(last)),
    isMissing(fraction)
      ? tipRow("Dead", "no value in this window")
      : [
          tipRow("Dead", el("strong", { text: percent(fraction) })),
          tipRow("Units", `${dead}/${units} dead`),
          data.dormant ? tipRow("Dormant", String(data.dormant[siteIndex][column])) : null,
          data.nan && data.nan[siteIndex][column]
            ? tipRow("NaN", `${data.nan[siteIndex][column]} unit(s) produced NaN or inf`)
            : null,
        ],
  ];
}

/** Row height for n sites: roomy for a few, compact for many. */
export function rowHeightFor(count) {
  if (count <= 12) return 28;
  if (count <= 24) return 22;
  if (count <= 48) return 16;
  return 12;
}

/**
 * The overview heatmap: one .heatmap-row[data-site] per site in model order,
 * each with a label button, a canvas strip and the latest dead fraction.
 */
export function siteHeatmap(data, { width, labelWidth, valueWidth, onSiteClick }) {
  const columns = data.steps.length;
  const stripWidth = Math.max(40, width - labelWidth - valueWidth);
  const rowHeight = rowHeightFor(data.sites.length);
  const cellWidth = stripWidth / columns;
  const columnBins = bins(columns, stripWidth);
  const binned = data.dead_fraction.map((row) => columnBins.map((bin) => worstHigh(row, bin)));
  const image = cellImage(data.sites.length, columnBins.length, (r, b) =>
    binned[r][b] === null ? null : deadRgb(binned[r][b]),
  );
  const guide = el("div", { class: "column-guide", hidden: true });
  const heatmap = el("div", {
    class: `heatmap${rowHeight < 16 ? " dense" : ""}`,
    id: "heatmap",
    style: `--row-height:${rowHeight}px;--label-width:${labelWidth}px;--value-width:${valueWidth}px`,
    dataset: { columns: String(columns), sites: String(data.sites.length) },
  });
  const stripsBySite = new Map();

  data.sites.forEach((site, index) => {
    const [canvas, context] = hidpiCanvas(stripWidth, rowHeight, {
      class: "strip",
      "aria-hidden": "true",
    });
    context.imageSmoothingEnabled = false;
    context.drawImage(image, 0, index, columnBins.length, 1, 0, 0, stripWidth, rowHeight);
    context.fillStyle = hatchPattern(context);
    binned[index].forEach((value, b) => {
      const [start, end] = columnBins[b];
      if (value === null) {
        context.fillRect(start * cellWidth, 0, (end - start) * cellWidth, rowHeight);
      }
    });
    columnGaps(context, columns, stripWidth, rowHeight);

    canvas.addEventListener("mousemove", (event) => {
      const [column] = pointerCell(event, canvas, columns);
      guide.hidden = false;
      guide.style.left = `${labelWidth + column * cellWidth}px`;
      guide.style.width = `${Math.max(1, cellWidth)}px`;
      showTooltip(event, cellTip(data, index, column));
    });
    canvas.addEventListener("mouseleave", () => {
      guide.hidden = true;
      hideTooltip();
    });
    const strip = el("div", { class: "strip-box", style: `width:${stripWidth}px` }, canvas);
    stripsBySite.set(site.name, strip);

    const values = data.dead_fraction[index].filter((v) => !isMissing(v));
    const latest = values.length ? values[values.length - 1] : null;
    const title = `${site.name} — ${site.kind}, ${site.units} units. Click for its units.`;
    heatmap.append(
      el(
        "div",
        {
          class: "heatmap-row",
          dataset: { site: site.name },
          title,
          onclick: () => onSiteClick(site.name),
        },
        el(
          "button",
          { class: "site-label", type: "button", title, "aria-label": `${site.name}: open site detail` },
          el("span", { class: "site-name", text: site.name }),
          el("span", { class: "site-meta", text: `${site.kind} · ${site.units}` }),
        ),
        strip,
        el("span", {
          class: `latest${latest > 0 ? " has-dead" : ""}`,
          title: "dead fraction in the last window",
          text: shortPercent(latest),
        }),
      ),
    );
  });

  // Fix markers: on the row of their site, over the column of their step.
  const size = Math.max(7, Math.min(12, rowHeight - 8));
  for (const group of groupFixes(data.fix_events, data.steps)) {
    const strip = stripsBySite.get(group.site);
    if (strip) strip.append(fixMarker(group, (group.column + 0.5) * cellWidth, rowHeight / 2, size));
  }
  heatmap.append(guide);
  return heatmap;
}

/**
 * A compact heatmap of one run for the comparison view: one canvas, sites as
 * rows in `order`, labels when rows are tall enough, fix markers on top.
 */
export function miniHeatmap(data, order, { width, labelWidth }) {
  const columns = data.steps.length;
  const indexOf = new Map(data.sites.map((site, i) => [site.name, i]));
  const rows = order.map((name) => indexOf.get(name));
  const rowHeight = Math.max(3, Math.min(20, Math.floor(150 / Math.max(1, rows.length))));
  const showLabels = rowHeight >= 10;
  const left = showLabels ? labelWidth : 0;
  const stripWidth = Math.max(40, width - left);
  const height = rowHeight * rows.length;
  const cellWidth = stripWidth / columns;
  const columnBins = bins(columns, stripWidth);
  const image = cellImage(rows.length, columnBins.length, (r, b) => {
    const value = worstHigh(data.dead_fraction[rows[r]], columnBins[b]);
    return value === null ? null : deadRgb(value);
  });
  const [canvas, context] = hidpiCanvas(stripWidth, height, {
    class: "mini-canvas",
    "aria-hidden": "true",
  });
  context.fillStyle = hatchPattern(context);
  context.fillRect(0, 0, stripWidth, height); // "no value" under transparent cells
  context.imageSmoothingEnabled = false;
  context.drawImage(image, 0, 0, columnBins.length, rows.length, 0, 0, stripWidth, height);
  columnGaps(context, columns, stripWidth, height);
  if (rowHeight >= 8) {
    context.fillStyle = "rgba(255, 255, 255, 0.9)";
    for (let r = 1; r < rows.length; r += 1) {
      context.fillRect(0, r * rowHeight - 0.5, stripWidth, 1);
    }
  }
  canvas.addEventListener("mousemove", (event) => {
    const [column, r] = pointerCell(event, canvas, columns, rows.length);
    showTooltip(event, cellTip(data, rows[r], column));
  });
  canvas.addEventListener("mouseleave", hideTooltip);

  const plot = el(
    "div",
    { class: "mini-plot", style: `width:${stripWidth}px;height:${height}px` },
    canvas,
  );
  const rowOf = new Map(order.map((name, r) => [name, r]));
  const size = Math.max(6, Math.min(10, rowHeight - 4));
  for (const group of groupFixes(data.fix_events, data.steps)) {
    if (!rowOf.has(group.site)) continue;
    const x = (group.column + 0.5) * cellWidth;
    const y = (rowOf.get(group.site) + 0.5) * rowHeight;
    plot.append(fixMarker(group, x, y, size));
  }
  const labels = showLabels
    ? el(
        "div",
        { class: "mini-labels", style: `width:${labelWidth}px;--row-height:${rowHeight}px` },
        order.map((name) => el("div", { class: "mini-label", title: name, text: name })),
      )
    : null;
  return el("div", { class: "mini-heatmap" }, labels, plot);
}

/**
 * The units x windows firing-rate map of one site: a canvas #unit-map with
 * data-units and data-columns, unit 0 at the top, NaN units pink. Returns
 * [map, note]; the note (or null) says when cells share pixels.
 */
export function unitMap(detail, { width, left, right }) {
  // The route sends whole thousandths (0-1000, null for a NaN unit).
  const rates = detail.unit_permille.map((row) => row.map((v) => (v === null ? null : v / 1000)));
  const units = rates.length;
  const columns = detail.unit_steps.length;
  const plotWidth = Math.max(40, width - left - right);
  // Up to 18 px per unit for a few units, 256 px in all for many.
  const perUnit = Math.min(18, Math.max(1, 256 / Math.max(1, units)));
  const height = Math.round(Math.max(48, Math.min(256, units * perUnit)));
  const cellWidth = plotWidth / Math.max(1, columns);
  const cellHeight = height / Math.max(1, units);
  const nan = [1, 3, 5].map((at) => parseInt(NAN_COLOR.slice(at, at + 2), 16));

  // Worst cell per pixel: NaN if any unit is NaN there, else the lowest rate.
  const unitBins = bins(units, height);
  const columnBins = bins(columns, plotWidth);
  const image = cellImage(unitBins.length, columnBins.length, (r, b) => {
    let lowest = Infinity;
    for (let u = unitBins[r][0]; u < unitBins[r][1]; u += 1) {
      for (let c = columnBins[b][0]; c < columnBins[b][1]; c += 1) {
        const value = rates[u][c];
        if (isMissing(value)) return nan;
        if (value < lowest) lowest = value;
      }
    }
    return rateRgb(lowest);
  });
  const [canvas, context] = hidpiCanvas(plotWidth, height, {
    id: "unit-map",
    class: "unit-canvas",
    role: "img",
    "aria-label": `firing rate of ${units} units over ${columns} windows`,
    dataset: { units: String(units), columns: String(columns) },
  });
  context.imageSmoothingEnabled = false;
  if (units && columns) {
    context.drawImage(image, 0, 0, columnBins.length, unitBins.length, 0, 0, plotWidth, height);
  }
  columnGaps(context, columns, plotWidth, height);
  if (cellHeight >= 6) {
    context.fillStyle = "rgba(255, 255, 255, 0.45)";
    for (let r = 1; r < units; r += 1) {
      context.fillRect(0, Math.round(r * cellHeight) - 0.5, plotWidth, 1);
    }
  }

  const outline = el("div", { class: "cell-outline", hidden: true });
  canvas.addEventListener("mousemove", (event) => {
    const [column, unit] = pointerCell(event, canvas, columns, units);
    const value = rates[unit][column];
    outline.hidden = false;
    Object.assign(outline.style, {
      left: `${left + column * cellWidth}px`,
      top: `${unit * cellHeight}px`,
      width: `${Math.max(2, cellWidth)}px`,
      height: `${Math.max(2, cellHeight)}px`,
    });
    const rate = isMissing(value)
      ? el("strong", { class: "nan-text", text: "NaN" })
      : el("strong", { text: `${value.toFixed(3)} (${percent(value)})` });
    showTooltip(
      event,
      el("div", { class: "tip-title", text: `${detail.site} · unit ${unit}` }),
      tipRow("Step", String(detail.unit_steps[column])),
      tipRow("Firing rate", rate),
    );
  });
  canvas.addEventListener("mouseleave", () => {
    outline.hidden = true;
    hideTooltip();
  });

  const axisLabels = el(
    "div",
    { class: "unit-axis", style: `width:${left}px;height:${height}px` },
    el("span", { class: "unit-axis-top", text: "unit 0" }),
    units > 1 ? el("span", { class: "unit-axis-bottom", text: String(units - 1) }) : null,
  );
  const map = el(
    "div",
    { class: "unit-map", style: `width:${width}px;height:${height}px` },
    axisLabels,
    el("div", { class: "unit-plot", style: `left:${left}px` }, canvas),
    outline,
  );
  const shrunk = unitBins.length < units || columnBins.length < columns;
  const note = shrunk
    ? el("p", {
        class: "hint",
        text:
          `${units} units × ${columns} windows share ${unitBins.length} × ${columnBins.length} ` +
          "pixels: each pixel shows the lowest rate (or a NaN) it covers; hover for single units.",
      })
    : null;
  return [map, note];
}
