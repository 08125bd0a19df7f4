// The three views. Each takes the route's JSON and fills `main` (already in
// the page, so widths can be measured); none of them fetches.
//   overviewView: section#overview     (the run's sites x windows)
//   siteView:     section#site-detail  (one site's figures and units)
//   compareView:  section#compare      (one .small-multiple per run)

import { lineChart, seriesLegend, xAxis } from "./charts.js";
import { deadLegend, rateLegend } from "./colors.js";
import { contentWidth, el, number, percent, plural, shortPercent } from "./dom.js";
import { groupFixes } from "./fixes.js";
import { miniHeatmap, siteHeatmap, unitMap } from "./heatmap.js";

const RED = "#b3261e";
const TEAL = "#00897b";
const PURPLE = "#7e57c2";
const PINK = "#ec407a";
const BLUE = "#1976d2";
const ORANGE = "#ef6c00";

/** Widths of the overview's label and latest-value columns. */
export function overviewMargins(width) {
  return { labelWidth: Math.round(Math.min(220, Math.max(110, width * 0.16))), valueWidth: 52 };
}

function panel(title, hint, ...children) {
  return el(
    "div",
    { class: "panel" },
    el(
      "div",
      { class: "panel-head" },
      el("h3", { text: title }),
      hint ? el("span", { class: "hint", text: hint }) : null,
    ),
    children,
  );
}

function stepSpan(steps) {
  if (!steps.length) return "no windows yet";
  const first = steps[0];
  const last = steps[steps.length - 1];
  return first === last ? `step ${first}` : `steps ${first}–${last}`;
}

/** One marker column per fix step (for the dashed lines of a chart). */
function fixColumns(events, steps) {
  return [...new Map(groupFixes(events, steps).map((group) => [group.column, group])).values()];
}

/** One fix event as a readable block: what, where, the diagnosis, the message. */
function fixItem(event, onSiteClick) {
  const site = onSiteClick
    ? el("button", {
        class: "link",
        type: "button",
        onclick: () => onSiteClick(event.site),
        text: event.site,
      })
    : el("strong", { text: event.site });
  const counts = Number.isFinite(event.before) && Number.isFinite(event.after);
  return el(
    "li",
    { class: "fix-item", dataset: { step: String(event.step), site: event.site } },
    el(
      "div",
      { class: "fix-item-head" },
      el("span", { class: "fix-dot", "aria-hidden": "true" }),
      el("span", { class: "fix-name", text: event.fix }),
      " on ",
      site,
      el("span", { class: "muted", text: ` · step ${event.step}` }),
      counts ? el("span", { class: "muted", text: ` · dead ${event.before} → ${event.after}` }) : null,
    ),
    event.diagnosis ? el("div", { class: "fix-diagnosis-text", text: event.diagnosis }) : null,
    event.message ? el("div", { class: "fix-message-text", text: event.message }) : null,
  );
}

function fixList(events, onSiteClick, limit = 30) {
  const more = events.length - limit;
  return el(
    "ul",
    { class: "fix-list" },
    events.slice(0, limit).map((event) => fixItem(event, onSiteClick)),
    more > 0 ? el("li", { class: "muted", text: `and ${more} more` }) : null,
  );
}

/** The overview: whole-model line above the sites x windows heatmap. */
export function overviewView(main, data, { onSiteClick }) {
  const columns = data.steps.length;
  const events = data.fix_events || [];
  const section = el("section", { id: "overview", class: "view", dataset: { run: data.run } });
  main.replaceChildren(section);
  const summary =
    `${plural(data.sites.length, "site")} · ${plural(data.windows, "window")}, ` +
    `${stepSpan(data.steps)} · ${events.length ? plural(events.length, "fix event") : "no fixes"}`;
  section.append(
    el(
      "div",
      { class: "view-head" },
      el("h2", { text: data.run }),
      el("span", { class: "muted", text: summary }),
      data.downsampled
        ? el("span", {
            class: "note",
            text: `${data.windows} windows shown as ${columns} columns; each shows its worst window`,
          })
        : null,
    ),
  );
  if (!columns || !data.sites.length) {
    section.append(el("div", { class: "empty-state", text: "This run has no monitor windows yet." }));
    return;
  }
  const box = panel("Whole model", "dead units over all sites, per window");
  section.append(box);
  const width = contentWidth(box);
  const { labelWidth, valueWidth } = overviewMargins(width);
  const modelSeries = [
    { name: "dead, whole model", values: data.model_dead_fraction, color: RED, format: percent },
  ];
  box.querySelector(".panel-head").append(seriesLegend(modelSeries));
  box.append(
    lineChart({
      id: "model-line",
      label: "dead fraction of the whole model per window",
      width,
      height: 96,
      left: labelWidth,
      right: valueWidth,
      top: 8,
      bottom: 6,
      ranges: data.step_ranges,
      series: modelSeries,
      yMin: 0,
      yMax: 1,
      yFormat: shortPercent,
      fixGroups: fixColumns(events, data.steps),
      showXAxis: false,
    }),
    el(
      "div",
      {
        class: "heatmap-head",
        style: `--label-width:${labelWidth}px;--value-width:${valueWidth}px`,
      },
      el("span", { text: "Site (model order)" }),
      el("span", { text: "Dead fraction per window · click a row for its units" }),
      el("span", { class: "right", text: "latest" }),
    ),
    siteHeatmap(data, { width, labelWidth, valueWidth, onSiteClick }),
    xAxis({ width, left: labelWidth, right: valueWidth, ranges: data.step_ranges }),
    deadLegend({ fixes: events.length > 0 }),
  );
  if (events.length) {
    section.append(panel("Fix events", "what the monitor did, and why", fixList(events, onSiteClick)));
  }
}

function stat(label, value, extra) {
  return el(
    "div",
    { class: "stat" },
    el("span", { class: "stat-label", text: label }),
    el("span", { class: "stat-value", text: value }),
    extra ? el("span", { class: "muted", text: extra }) : null,
  );
}

/** Site detail: its dead fraction, units map, counts, SELU moments, fixes. */
export function siteView(main, detail, { onBack }) {
  const columns = detail.steps.length;
  const events = detail.fix_events || [];
  const last = columns - 1;
  const section = el("section", {
    id: "site-detail",
    class: "view",
    dataset: { site: detail.site, run: detail.run },
  });
  main.replaceChildren(section);
  section.append(
    el(
      "div",
      { class: "view-head" },
      el(
        "button",
        { id: "back-button", type: "button", onclick: onBack, title: "Back to the overview (Esc)" },
        "← Overview",
      ),
      el("h2", { class: "site-title", title: detail.site, text: detail.site }),
      el("span", {
        class: "muted",
        text: `${detail.kind} · ${plural(detail.units, "unit")} · run ${detail.run}`,
      }),
      detail.downsampled
        ? el("span", {
            class: "note",
            text: `${detail.windows} windows in ${columns} columns (worst window each)`,
          })
        : null,
    ),
  );
  if (!columns) {
    section.append(el("div", { class: "empty-state", text: "No windows recorded for this site." }));
    return;
  }
  section.append(
    el(
      "div",
      { class: "stats", "aria-label": "latest window" },
      stat("Dead now", percent(detail.dead_fraction[last]), `${detail.dead[last]}/${detail.units}`),
      stat("Dormant", number(detail.dormant[last])),
      stat("NaN", number(detail.nan[last])),
      stat("Mean firing rate", number(detail.firing_rate[last])),
      stat("Fixes here", String(events.length)),
      el("span", { class: "muted stats-note", text: `at step ${detail.steps[last]}` }),
    ),
  );

  const mainColumn = el("div", { class: "detail-main" });
  const sideColumn = el("div", { class: "detail-side" });
  section.append(el("div", { class: "detail-grid" }, mainColumn, sideColumn));

  // Each column covers a group of windows (one window unless downsampled).
  const ends = detail.steps;
  const ranges = detail.step_ranges || ends.map((step) => [step, step]);
  const fixGroups = groupFixes(events, ends);
  const left = 44;
  const right = 12;

  // Left: dead fraction (with the fix markers) above the units map.
  const deadSeries = [
    { name: "dead fraction", values: detail.dead_fraction, color: RED, format: percent },
    { name: "mean firing rate", values: detail.firing_rate, color: TEAL, dash: "4 3" },
  ];
  const deadPanel = panel("Dead fraction", null);
  mainColumn.append(deadPanel);
  const mainWidth = contentWidth(deadPanel);
  deadPanel.querySelector(".panel-head").append(seriesLegend(deadSeries));
  deadPanel.append(
    lineChart({
      id: "site-dead-line",
      label: `dead fraction of ${detail.site} per window`,
      width: mainWidth,
      height: 132,
      left,
      right,
      top: 14,
      ranges,
      series: deadSeries,
      yMin: 0,
      yMax: 1,
      yFormat: shortPercent,
      fixGroups,
      fixMarkers: true,
    }),
  );

  const unitsPanel = panel("Units × windows", "firing rate of each unit; dark rows are dead units");
  mainColumn.append(unitsPanel);
  if (detail.unit_permille.length && detail.unit_steps.length) {
    const unitRanges =
      detail.unit_steps.length === columns ? ranges : detail.unit_steps.map((step) => [step, step]);
    const [map, note] = unitMap(detail, { width: mainWidth, left, right });
    unitsPanel.append(
      map,
      xAxis({ width: mainWidth, left, right, ranges: unitRanges }),
      rateLegend(),
    );
    if (note) unitsPanel.append(note);
  } else {
    unitsPanel.append(
      el("div", { class: "empty-state", text: "No per-unit firing rates were logged for this site." }),
    );
  }

  // Right: unit counts, SELU moments, the fixes in words.
  const countSeries = [
    { name: "dead", values: detail.dead, color: RED },
    { name: "dormant", values: detail.dormant, color: PURPLE, dash: "5 3" },
    { name: "NaN", values: detail.nan, color: PINK },
  ];
  const countPanel = panel("Dead, dormant and NaN units", null);
  sideColumn.append(countPanel);
  const sideWidth = contentWidth(countPanel);
  countPanel.querySelector(".panel-head").append(seriesLegend(countSeries));
  countPanel.append(
    lineChart({
      id: "counts-chart",
      label: `dead, dormant and NaN unit counts of ${detail.site}`,
      width: sideWidth,
      height: 118,
      ranges,
      series: countSeries,
      yMin: 0,
      yMax: Math.max(1, detail.units || 0),
      fixGroups,
    }),
  );

  const isSelu = detail.selu_mean.some((value) => value !== null && value !== undefined);
  if (isSelu) {
    const seluSeries = [
      { name: "mean", values: detail.selu_mean, color: BLUE },
      { name: "std", values: detail.selu_std, color: ORANGE },
    ];
    const seluPanel = panel("SELU mean and std", null);
    sideColumn.append(seluPanel);
    seluPanel.querySelector(".panel-head").append(seriesLegend(seluSeries));
    seluPanel.append(
      lineChart({
        id: "selu-chart",
        label: `SELU activation mean and standard deviation of ${detail.site}`,
        width: sideWidth,
        height: 132,
        ranges,
        series: seluSeries,
        refLines: [
          { y: 0, label: "mean target 0" },
          { y: 1, label: "std target 1" },
        ],
        fixGroups,
      }),
      el("p", {
        class: "hint",
        text:
          "Self-normalising units keep mean near 0 and std near 1; " +
          "a drift away means the normalisation broke.",
      }),
    );
  }

  const fixHint = events.length ? "hover the ◆ markers in the chart, or read them here" : null;
  const fixPanel = panel("Fixes at this site", fixHint);
  sideColumn.append(fixPanel);
  fixPanel.append(
    events.length
      ? el("div", { id: "site-fixes" }, fixList(events, null, 10))
      : el("div", { class: "muted", id: "site-fixes", text: "No fix was applied to this site." }),
  );
}

/** Site order shared by the small multiples: the first run's, when sites match. */
function sharedOrder(results) {
  const first = results.find((result) => result.data);
  const reference = first ? first.data.sites.map((site) => site.name) : [];
  const referenceSet = new Set(reference);
  return (data) => {
    const names = data.sites.map((site) => site.name);
    const same = names.length === reference.length && names.every((n) => referenceSet.has(n));
    return same ? reference : names;
  };
}

/** One run's card: name, fixes badge, figures, sparkline, mini heatmap. */
function fillCard(card, { run, data, error }, order) {
  const events = data ? data.fix_events || [] : [];
  const fixNames = [...new Set(events.map((event) => event.fix))];
  const badge = events.length ? `${fixNames.join(", ")} · ${plural(events.length, "fix")}` : "no fix";
  card.append(
    el(
      "div",
      { class: "card-head" },
      el("button", { class: "run-open", type: "button", title: run, text: run }),
      data ? el("span", { class: `badge${events.length ? " badge-fix" : ""}`, text: badge }) : null,
    ),
  );
  if (error) {
    card.append(
      el("div", { class: "error-box", role: "alert", text: `Could not load ${run}: ${error.message}` }),
    );
    return;
  }
  if (!data.steps.length) {
    card.append(el("div", { class: "muted", text: "no windows yet" }));
    return;
  }
  const model = data.model_dead_fraction;
  const width = contentWidth(card);
  const labelWidth = Math.min(90, Math.max(48, Math.round(width * 0.16)));
  card.append(
    el(
      "div",
      { class: "card-stats" },
      el("span", {}, "model dead now ", el("strong", { text: shortPercent(model[model.length - 1]) })),
      el("span", {}, "peak ", el("strong", { text: shortPercent(Math.max(...model)) })),
      el("span", { class: "muted", text: `${plural(data.windows, "window")}, ${stepSpan(data.steps)}` }),
    ),
  );
  const mini = miniHeatmap(data, order, { width, labelWidth });
  const left = mini.querySelector(".mini-labels") ? labelWidth : 0;
  card.append(
    lineChart({
      label: `dead fraction of the whole model in ${run}`,
      width,
      height: 52,
      left,
      right: 0,
      top: 6,
      bottom: 4,
      ranges: data.step_ranges,
      series: [{ name: "dead, whole model", values: model, color: RED, format: percent }],
      yMin: 0,
      yMax: 1,
      yFormat: left ? shortPercent : () => "",
      fixGroups: fixColumns(events, data.steps),
      showXAxis: false,
    }),
    mini,
    xAxis({ width, left, right: 0, ranges: data.step_ranges }),
  );
}

/** Runs compared: one .small-multiple per run, same scale and site order. */
export function compareView(main, results, { onOpenRun }) {
  const section = el("section", { id: "compare", class: "view" });
  main.replaceChildren(section);
  section.append(
    el(
      "div",
      { class: "view-head" },
      el("h2", { text: "Runs compared" }),
      el("span", {
        class: "muted",
        text: "same colour scale and site order in every run · click a run to open it",
      }),
    ),
    deadLegend({ fixes: true }),
  );
  const grid = el("div", { class: "small-multiples" });
  section.append(grid);
  // Lay all cards out first, so each one's width can be measured.
  const cards = results.map(({ run }) => {
    const card = el("div", {
      class: "small-multiple",
      dataset: { run },
      title: `Open the overview of ${run}`,
      onclick: () => onOpenRun(run),
    });
    grid.append(card);
    return card;
  });
  const orderOf = sharedOrder(results);
  results.forEach((result, index) => {
    fillCard(cards[index], result, result.data ? orderOf(result.data) : []);
  });
}
