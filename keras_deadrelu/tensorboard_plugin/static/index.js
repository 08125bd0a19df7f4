// Dead Neurons: the TensorBoard tab of keras-deadrelu.
//
// TensorBoard loads this ES module in the tab's iframe (base href
// plugin/dead_neurons/) and calls render(). Plain JavaScript, SVG and
// <canvas>; every request goes to this plugin's own routes (./runs,
// ./overview, ./site) or its static files (./static/*).
//
// Views (one at a time in <main id="main">):
// - Overview (section#overview[data-run]): for the run picked in
//   select#run-select, the whole model's dead fraction per window
//   (#model-line, SVG) above a heatmap with one .heatmap-row[data-site] per
//   site in model order (a canvas strip, one column per window, coloured by
//   dead fraction; hatched grey where a site has no value). Hovering a cell
//   fills #tooltip with site, step(s), dead % and dead/total units.
//   .fix-marker[data-step][data-site][data-fix] diamonds sit on the row and
//   column of each fix; hovering one shows the fix, its message and the
//   diagnosis. The fix events are also listed below.
// - Site detail (section#site-detail[data-site], open by clicking a row):
//   dead fraction and mean firing rate (#site-dead-line, with .fix-marker at
//   the fix steps), the units x windows firing-rate map (canvas#unit-map
//   with data-units/data-columns; NaN units pink; hover: unit, step, rate),
//   dead/dormant/NaN counts (#counts-chart), for SELU sites the activation
//   mean and std with reference lines at 0 and 1 (#selu-chart), and the
//   site's fixes. #back-button (or Esc) returns to the overview.
// - Runs compared (section#compare, button#compare-toggle): one
//   .small-multiple[data-run] per run, a compact heatmap with the same
//   colour scale and site order, its fix markers and a whole-model
//   sparkline; clicking one opens that run's overview.

import { fetchOverview, fetchRuns, fetchSite } from "./static/api.js";
import { el, hideTooltip } from "./static/dom.js";
import { compareView, overviewMargins, overviewView, siteView } from "./static/views.js";

const state = {
  runs: [],
  run: null,
  view: "overview", // "overview" | "site" | "compare"
  site: null,
  token: 0, // bumps on every navigation: late answers for old views are dropped
  cache: new Map(),
};

let main;
let runSelect;
let statusLine;

/** Loads style.css and resolves once it applies (so widths can be measured). */
function loadStyle() {
  return new Promise((resolve) => {
    if (document.querySelector("link[data-dead-neurons]")) {
      resolve();
      return;
    }
    const link = el("link", { rel: "stylesheet", href: "./static/style.css", "data-dead-neurons": "" });
    link.addEventListener("load", resolve);
    link.addEventListener("error", resolve); // unstyled beats blank
    document.head.append(link);
  });
}

function button(id, label, onclick, title) {
  return el("button", { id, type: "button", onclick, title }, label);
}

function buildShell() {
  runSelect = el("select", { id: "run-select", onchange: () => openRun(runSelect.value) });
  statusLine = el("span", { id: "status", role: "status", "aria-live": "polite" });
  const app = el(
    "div",
    { class: "app" },
    el(
      "header",
      { class: "toolbar" },
      el("h1", { text: "Dead Neurons" }),
      el("div", { class: "run-picker" }, el("label", { for: "run-select", text: "Run" }), runSelect),
      el(
        "div",
        { class: "view-switch", role: "group", "aria-label": "View" },
        button("overview-button", "Overview", () => openRun(state.run)),
        button("compare-toggle", "Runs compared", toggleCompare),
      ),
      el("span", { class: "spacer" }),
      statusLine,
      button("reload-button", "Reload", reload, "Read the logs again"),
    ),
    el("main", { id: "main" }),
    el("div", { id: "tooltip", role: "tooltip", hidden: true }),
  );
  document.body.replaceChildren(app);
  main = document.getElementById("main");
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.view === "site") openRun(state.run);
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => show({ fromResize: true }), 150);
  });
  // Hide a stale tooltip when the view scrolls under the pointer.
  window.addEventListener("scroll", hideTooltip, { passive: true });
}

function errorBox(what, error) {
  return el(
    "div",
    { class: "error-box", role: "alert" },
    el("strong", { text: `Could not load ${what}.` }),
    " ",
    el("span", { class: "error-message", text: error.message || String(error) }),
  );
}

/** Windows to ask for: about one column per pixel of the plot. */
function columnBudget(fraction) {
  const width = main.clientWidth * fraction;
  const { labelWidth, valueWidth } = overviewMargins(width);
  return Math.max(20, Math.min(1000, Math.floor(width - labelWidth - valueWidth - 40)));
}

async function cached(key, load) {
  if (!state.cache.has(key)) {
    const promise = load();
    state.cache.set(key, promise);
    promise.catch(() => state.cache.delete(key)); // retry errors next time
  }
  return state.cache.get(key);
}

const overviewOf = (run, maxWindows) =>
  cached(`overview ${run} ${maxWindows}`, () => fetchOverview(run, maxWindows));

function updateControls() {
  const compare = state.view === "compare";
  document.getElementById("overview-button").setAttribute("aria-pressed", String(!compare));
  document.getElementById("compare-toggle").setAttribute("aria-pressed", String(compare));
  if (state.run !== null) runSelect.value = state.run;
  document.body.dataset.view = state.view;
}

/** Draws the current view, fetching what it needs (cached). */
async function show({ fromResize = false } = {}) {
  const token = ++state.token;
  hideTooltip();
  updateControls();
  if (!state.runs.length) return;
  const current = () => token === state.token;
  const slow = setTimeout(() => {
    if (current()) statusLine.textContent = "Loading…";
  }, 150);
  try {
    if (state.view === "overview") {
      const data = await overviewOf(state.run, columnBudget(1)).catch((error) => ({ error }));
      if (!current()) return;
      if (data.error) main.replaceChildren(errorBox(`the overview of run ${state.run}`, data.error));
      else overviewView(main, data, { onSiteClick: openSite });
    } else if (state.view === "site") {
      const maxWindows = columnBudget(0.6);
      const key = `site ${state.run} ${state.site} ${maxWindows}`;
      const data = await cached(key, () => fetchSite(state.run, state.site, maxWindows)).catch(
        (error) => ({ error }),
      );
      if (!current()) return;
      if (data.error) {
        main.replaceChildren(
          button("back-button", "← Overview", () => openRun(state.run)),
          errorBox(`site ${state.site} of run ${state.run}`, data.error),
        );
      } else {
        siteView(main, data, { onBack: () => openRun(state.run) });
      }
    } else {
      const maxWindows = Math.min(300, columnBudget(0.45));
      const results = await Promise.all(
        state.runs.map((entry) =>
          overviewOf(entry.run, maxWindows).then(
            (data) => ({ run: entry.run, data }),
            (error) => ({ run: entry.run, error }),
          ),
        ),
      );
      if (!current()) return;
      compareView(main, results, { onOpenRun: openRun });
    }
    if (!fromResize) window.scrollTo(0, 0);
  } finally {
    clearTimeout(slow);
    if (current()) statusLine.textContent = "";
  }
}

function openRun(run) {
  if (run === null || run === undefined) return;
  state.run = run;
  state.view = "overview";
  state.site = null;
  show();
}

function openSite(site) {
  state.site = site;
  state.view = "site";
  show();
}

function toggleCompare() {
  state.view = state.view === "compare" ? "overview" : "compare";
  show();
}

/** Lists the runs; keeps the current run and view when they still exist. */
async function loadRuns() {
  const token = ++state.token;
  statusLine.textContent = "Loading…";
  let runs;
  try {
    runs = await fetchRuns();
  } catch (error) {
    if (token !== state.token) return;
    statusLine.textContent = "";
    main.replaceChildren(errorBox("the list of runs", error));
    return;
  }
  if (token !== state.token) return;
  statusLine.textContent = "";
  state.runs = runs;
  runSelect.replaceChildren(...runs.map((entry) => el("option", { value: entry.run, text: entry.run })));
  runSelect.disabled = runs.length === 0;
  for (const id of ["overview-button", "compare-toggle"]) {
    document.getElementById(id).disabled = runs.length === 0;
  }
  if (!runs.length) {
    main.replaceChildren(
      el(
        "div",
        { class: "empty-state", id: "no-runs" },
        el("h2", { text: "No Dead Neurons data yet" }),
        el("p", {
          text:
            "Add keras_deadrelu.DeadNeuronMonitor(log_dir) to model.fit(callbacks=[...]), " +
            "point TensorBoard's --logdir at that folder, and press Reload once the first " +
            "window has been logged.",
        }),
      ),
    );
    return;
  }
  const names = runs.map((entry) => entry.run);
  if (!names.includes(state.run)) {
    state.run = names[0];
    if (state.view === "site") state.view = "overview";
  }
  const current = runs.find((r) => r.run === state.run);
  if (state.view === "site" && !current.sites.some((site) => site.name === state.site)) {
    state.view = "overview";
  }
  await show();
}

function reload() {
  state.cache.clear();
  loadRuns();
}

/** Entry point called by TensorBoard's plugin_entry.html. */
export async function render() {
  document.title = "Dead Neurons";
  await loadStyle();
  buildShell();
  await loadRuns();
}
