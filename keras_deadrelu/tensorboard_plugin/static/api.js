// The plugin's JSON routes. The page's <base> is plugin/dead_neurons/, so the
// relative URLs below reach this plugin's own routes and nothing else.

/** An error from a route, carrying the server's message. */
export class RouteError extends Error {
  constructor(route, message, status) {
    super(message);
    this.route = route;
    this.status = status;
  }
}

/** GET ./route?params as JSON; throws RouteError with the server's message. */
export async function getJson(route, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(key, String(value));
  }
  const text = query.toString();
  const url = `./${route}${text ? `?${text}` : ""}`;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (error) {
    throw new RouteError(route, `could not reach TensorBoard (${error.message})`, 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new RouteError(route, message, response.status);
  }
  if (body === null) throw new RouteError(route, "the answer is not JSON", response.status);
  return body;
}

export const fetchRuns = () => getJson("runs").then((body) => body.runs || []);

export const fetchOverview = (run, maxWindows) =>
  getJson("overview", { run, max_windows: maxWindows });

export const fetchSite = (run, site, maxWindows) =>
  getJson("site", { run, site, max_windows: maxWindows });
