// Web analytics' one page (top lists, filter chips, goals) and the forecast panel's retrain:
// panels that read or write on their own, beside the view that places them.

import { useEffect, useState } from "preact/hooks";
import { ApiError, type Api, type Me } from "./api";
import { drillTarget, filters, routeHash, type Route } from "./route";
import { label, setCurrency, shownValue, type Row } from "./shape";

type View = Record<string, unknown>;

/** The top-N panels of web analytics' overview: the view each reads and the filters it takes. */
const TOP_PANELS: { view: string; dimension: string; title: string; filters: string[] }[] = [
  { view: "sources", dimension: "source", title: "Sources", filters: ["site", "source", "device", "country", "browser", "os"] },
  { view: "pages", dimension: "path", title: "Pages", filters: ["site", "path"] },
  { view: "countries", dimension: "country", title: "Countries", filters: ["site", "source", "device", "country", "browser", "os"] },
  { view: "devices", dimension: "device", title: "Devices", filters: ["site", "source", "device", "country", "browser", "os"] },
];

/** One top-N panel as loaded: its rows, or which filters it cannot apply. */
export interface TopPanel {
  view: string;
  dimension: string;
  title: string;
  rows: Row[];
  unfiltered: string[];
  error?: string;
}

/** Loads every top-N panel under `chosen` filters; a panel that cannot apply one says so. */
/** The top panels from the web overview's answer (`top`: rows by panel), under the chosen filters. */
export function panelsFrom(top: Record<string, Row[]>, chosen: Record<string, string>): TopPanel[] {
  return TOP_PANELS.map((t) => {
    const unfiltered = Object.keys(chosen).filter((k) => !t.filters.includes(k) && !k.startsWith("utm_"));
    return { ...t, rows: unfiltered.length ? [] : (top[t.view] ?? []), unfiltered };
  });
}

export async function topPanels(api: Api, time: Record<string, string | undefined>, chosen: Record<string, string>): Promise<TopPanel[]> {
  return Promise.all(
    TOP_PANELS.map(async (t) => {
      const unfiltered = Object.keys(chosen).filter((k) => !t.filters.includes(k) && !k.startsWith("utm_"));
      if (unfiltered.length) return { ...t, rows: [], unfiltered };
      try {
        const v = await api.get<View>(`/api/v1/web/${t.view}`, { ...time, ...chosen, limit: "10" });
        return { ...t, rows: (v.rows as Row[] | undefined) ?? [], unfiltered };
      } catch (e) {
        return { ...t, rows: [], unfiltered, error: e instanceof ApiError ? e.detail : String(e) };
      }
    }),
  );
}

/** A top-N panel: rows with inline bars; a click on a row filters the whole page by it. */
export function TopList(props: { panel: TopPanel; route: Route }) {
  const { panel, route } = props;
  // Visitors, as Plausible ranks every top list (the pages view sorts by pageviews).
  const measure = "visitors";
  const rows = [...panel.rows].sort((a, b) => Number(b[measure] ?? 0) - Number(a[measure] ?? 0));
  const most = Math.max(1, ...rows.map((r) => Number(r[measure] ?? 0)));
  const pick = (value: string) => {
    // A page is charted in Explore (the overview's metrics have no path); the rest filter.
    location.hash = routeHash(panel.dimension === "path" ? drillTarget({ ...route, view: "pages" }, "path", value) : { ...route, params: { ...route.params, [panel.dimension]: value } });
  };
  return (
    <figure class="panel top" data-top={panel.view}>
      <figcaption>
        <h2>{panel.title}</h2>
        <span class="muted">{label(measure)}</span>
      </figcaption>
      {panel.unfiltered.length > 0 && <p class="muted">{`${panel.title} cannot be split by ${panel.unfiltered.join(", ")}.`}</p>}
      {panel.error && <p class="muted">{panel.error}</p>}
      {!panel.unfiltered.length && !panel.error && !panel.rows.length && <p class="muted empty">No data in this range.</p>}
      {rows.length > 0 && (
        <ol class="toplist">
          {rows.map((r) => {
            const value = String(r[panel.dimension] ?? "(none)");
            const n = Number(r[measure] ?? 0);
            return (
              <li key={value}>
                <button type="button" onClick={() => pick(value)} title={panel.dimension === "path" ? `Chart ${value} in Explore` : `Filter every panel by ${panel.dimension} = ${shownValue(panel.dimension, value)}`}>
                  <span class="bar" style={{ width: `${Math.round((100 * n) / most)}%` }} />
                  <span class="name">{shownValue(panel.dimension, value)}</span>
                  <span class="value">{n.toLocaleString("en-US")}</span>
                </button>
              </li>
            );
          })}
        </ol>
      )}
    </figure>
  );
}

/** The route's dimension filters as chips, each removable; they apply to every panel. */
export function FilterChips(props: { route: Route }) {
  const chosen = Object.entries(filters(props.route));
  if (!chosen.length) return null;
  return (
    <ul class="chips" aria-label="Filters">
      {chosen.map(([k, v]) => {
        const { [k]: _drop, ...rest } = props.route.params;
        const shown = v.startsWith("!") ? `${k} ≠ ${shownValue(k, v.slice(1))}` : `${k} = ${shownValue(k, v)}`;
        return (
          <li key={k} class="chip" data-filter={k}>
            {shown}{" "}
            <a href={routeHash({ ...props.route, params: rest })} aria-label={`Remove the filter ${shown}`}>
              ×
            </a>
          </li>
        );
      })}
    </ul>
  );
}

/** A goal as the API keeps it: a custom event by name, or a page by path. */
interface Goal {
  name: string;
  event?: string;
  path?: string;
}

/** `GET /api/v1/web/goals`, or why it was not read. */
export interface GoalsView {
  visitors?: number;
  goals?: (Goal & { visitors: number; events: number; conversion_rate: number | null })[];
  filtered?: string[];
  error?: string;
}

/** Goal conversions (Plausible's panel), and for admins a form to change the goals. */
export function GoalsPanel(props: { view: GoalsView; me: Me; api: Api; reload: () => void }) {
  const { view } = props;
  const [editing, setEditing] = useState(false);
  const rows = view.goals ?? [];
  return (
    <figure class="panel top" data-top="goals">
      <figcaption>
        <h2>Goals</h2>
        <span class="muted">Visitors · conversion</span>
        {props.me.role === "admin" && !view.filtered && (
          <button type="button" onClick={() => setEditing(!editing)} aria-expanded={editing}>
            {editing ? "close" : "edit goals"}
          </button>
        )}
      </figcaption>
      {view.filtered && <p class="muted">{`Goals cannot be split by ${view.filtered.join(", ")} yet.`}</p>}
      {view.error && <p class="muted">{view.error}</p>}
      {!view.filtered && !view.error && !rows.length && !editing && <p class="muted empty">No goals yet{props.me.role === "admin" ? ": add an event or a page that counts as a conversion." : "."}</p>}
      {rows.length > 0 && (
        <ol class="toplist">
          {rows.map((g) => (
            <li key={g.name}>
              <span class="row" title={g.event ? `event ${g.event}` : `page ${g.path}`}>
                <span class="bar" style={{ width: `${Math.round(100 * (g.conversion_rate ?? 0))}%` }} />
                <span class="name">{g.name}</span>
                <span class="value">
                  {g.visitors.toLocaleString("en-US")} · {g.conversion_rate === null ? "–" : `${(100 * g.conversion_rate).toFixed(1)}%`}
                </span>
              </span>
            </li>
          ))}
        </ol>
      )}
      {editing && (
        <GoalsForm
          api={props.api}
          goals={rows.map(({ name, event, path }) => ({ name, event, path }))}
          saved={() => {
            setEditing(false);
            props.reload();
          }}
        />
      )}
    </figure>
  );
}

/** Edits the goal list: each row a name, a kind (event or page) and its value. */
function GoalsForm(props: { api: Api; goals: Goal[]; saved: () => void }) {
  const [list, setList] = useState<{ name: string; kind: "event" | "path"; value: string }[]>(
    props.goals.map((g) => ({ name: g.name, kind: g.event !== undefined ? "event" : "path", value: g.event ?? g.path ?? "" })),
  );
  const [error, setError] = useState("");
  // Functional updates: two quick edits (a name typed, then a kind chosen) must not overwrite
  // each other from a stale list.
  const set = (i: number, change: Partial<(typeof list)[number]>) => setList((l) => l.map((g, j) => (j === i ? { ...g, ...change } : g)));
  return (
    <form
      class="goals"
      onSubmit={async (e) => {
        e.preventDefault();
        setError("");
        try {
          await props.api.put("/api/v1/web/goals", { goals: list.map((g) => ({ name: g.name, [g.kind]: g.value })) });
          props.saved();
        } catch (err) {
          setError(err instanceof ApiError ? `${err.status}: ${err.detail}` : String(err));
        }
      }}
    >
      {list.map((g, i) => (
        <fieldset key={i} class="goal">
          <label>
            Name <input value={g.name} onInput={(e) => set(i, { name: e.currentTarget.value })} required maxLength={64} />
          </label>
          <label>
            Kind{" "}
            <select value={g.kind} onChange={(e) => set(i, { kind: e.currentTarget.value as "event" | "path" })}>
              <option value="event">event</option>
              <option value="path">page</option>
            </select>
          </label>
          <label>
            {g.kind === "event" ? "Event name" : "Page path"} <input value={g.value} placeholder={g.kind === "event" ? "signup" : "/pricing or /docs/*"} onInput={(e) => set(i, { value: e.currentTarget.value })} required />
          </label>
          <button type="button" onClick={() => setList((l) => l.filter((_, j) => j !== i))} aria-label={`Remove the goal ${g.name}`}>
            remove
          </button>
        </fieldset>
      ))}
      <p>
        <button type="button" onClick={() => setList((l) => [...l, { name: "", kind: "event", value: "" }])} disabled={list.length >= 20}>
          add a goal
        </button>{" "}
        <button type="submit">save goals</button>
      </p>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

/** A retrain job as the API answers it. */
interface RetrainJob {
  id: string;
  status: "queued" | "running" | "done" | "failed";
  fitted: string[];
  skipped: string[];
  error?: string;
}

/** Admins refit every metric's forecaster now: the job is queued, followed, and the view reloaded. */
export function Retrain(props: { api: Api; done: () => void }) {
  const [job, setJob] = useState<RetrainJob | null>(null);
  const [error, setError] = useState("");
  const start = async () => {
    setError("");
    try {
      let j = await props.api.post<RetrainJob>("/api/v1/predictions/retrain", {});
      setJob(j);
      for (let i = 0; i < 300 && (j.status === "queued" || j.status === "running"); i++) {
        await new Promise((r) => setTimeout(r, 1000));
        j = await props.api.get<RetrainJob>(`/api/v1/predictions/retrain/${encodeURIComponent(j.id)}`);
        setJob(j);
      }
      if (j.status === "done") props.done();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.status}: ${e.detail}` : String(e));
    }
  };
  const busy = job?.status === "queued" || job?.status === "running";
  return (
    <p class="retrain">
      <button type="button" onClick={start} disabled={busy}>
        Retrain forecasts now
      </button>{" "}
      <span role="status" data-retrain={job?.status ?? ""}>
        {busy && `Retraining (${job?.status})…`}
        {job?.status === "done" && `Retrained: ${job.fitted.length} forecast${job.fitted.length === 1 ? "" : "s"} fitted${job.skipped.length ? `, ${job.skipped.length} metric${job.skipped.length === 1 ? "" : "s"} with too little history` : ""}.`}
        {job?.status === "failed" && `The retrain failed: ${job.error ?? "unknown error"}`}
        {error}
      </span>
    </p>
  );
}


/** Currencies offered first; any ISO 4217 code the browser knows works through the API. */
const CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "INR", "BRL", "CNY"];

/** The tenant's currency, for an admin to change (`PUT /api/v1/settings`): money in every view follows. */
export function CurrencySetting(props: { api: Api; done: () => void }) {
  const [currency, setChosen] = useState<string>("");
  const [error, setError] = useState("");
  useEffect(() => {
    props.api.get<{ currency?: string | null }>("/api/v1/settings").then((s) => setChosen(s.currency ?? ""), () => {});
  }, []);
  const choose = async (code: string) => {
    setError("");
    try {
      const kept = await props.api.put<{ currency?: string | null }>("/api/v1/settings", { currency: code || null });
      setChosen(kept.currency ?? "");
      setCurrency(kept.currency);
      props.done();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.status}: ${e.detail}` : String(e));
    }
  };
  const offered = currency && !CURRENCIES.includes(currency) ? [currency, ...CURRENCIES] : CURRENCIES;
  return (
    <label class="toggle">
      currency{" "}
      <select value={currency} onChange={(e) => choose(e.currentTarget.value)} aria-label="the tenant's currency">
        <option value="">none</option>
        {offered.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
      {error && <span role="alert"> {error}</span>}
    </label>
  );
}
