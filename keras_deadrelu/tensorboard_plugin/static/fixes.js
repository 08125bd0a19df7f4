// Fix events: which column a fix step falls in, one marker per (site, column)
// and the hover card with the fix, its message and the diagnosis.

import { el, hideTooltip, showTooltip, stepLabel } from "./dom.js";

/** The column holding `step`: columns end at steps[i] (ascending). */
export function columnOfStep(steps, step) {
  let low = 0;
  let high = steps.length - 1;
  if (high < 0) return -1;
  if (step > steps[high]) return high;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (steps[middle] >= step) high = middle;
    else low = middle + 1;
  }
  return low;
}

/** Events grouped by (site, column): [{site, column, events}] in step order. */
export function groupFixes(events, steps) {
  const groups = new Map();
  for (const event of events || []) {
    const column = columnOfStep(steps, event.step);
    if (column < 0) continue;
    const key = `${column}\u0000${event.site}`;
    if (!groups.has(key)) groups.set(key, { site: event.site, column, events: [] });
    groups.get(key).events.push(event);
  }
  return [...groups.values()].sort((a, b) => a.column - b.column);
}

/** The hover card for one or more fix events. */
export function fixCard(events) {
  return events.map((event) =>
    el(
      "div",
      { class: "fix-card" },
      el(
        "div",
        { class: "fix-card-title" },
        el("span", { class: "fix-name", text: `Fix: ${event.fix}` }),
        el("span", {
          class: "tip-muted",
          text: ` · ${event.site} · ${stepLabel([event.step, event.step])}`,
        }),
      ),
      Number.isFinite(event.before) && Number.isFinite(event.after)
        ? el("div", {
            class: "tip-muted",
            text: `dead units ${event.before} → ${event.after}`,
          })
        : null,
      event.message ? el("div", { class: "fix-message", text: event.message }) : null,
      el(
        "div",
        { class: "fix-diagnosis" },
        el("span", { class: "tip-key", text: "Diagnosis " }),
        event.diagnosis || "none recorded",
      ),
    ),
  );
}

/**
 * A fix marker: a small diamond at (x, y) inside a relatively positioned
 * parent. Hover or focus shows the fix card.
 */
export function fixMarker(group, x, y, size = 11) {
  const first = group.events[0];
  const names = [...new Set(group.events.map((event) => event.fix))].join(",");
  const marker = el("span", {
    class: "fix-marker",
    tabindex: "0",
    role: "img",
    "aria-label": `fix ${names} on ${group.site} at step ${first.step}`,
    style:
      `left:${(x - size / 2).toFixed(1)}px;top:${(y - size / 2).toFixed(1)}px;` +
      `width:${size}px;height:${size}px`,
    dataset: {
      step: String(first.step),
      site: group.site,
      fix: names,
      count: String(group.events.length),
    },
  });
  const show = (event) => showTooltip(event, fixCard(group.events));
  marker.addEventListener("mouseenter", show);
  marker.addEventListener("mousemove", (event) => {
    event.stopPropagation();
    show(event);
  });
  marker.addEventListener("mouseleave", hideTooltip);
  marker.addEventListener("focus", () => show(marker));
  marker.addEventListener("blur", hideTooltip);
  return marker;
}
