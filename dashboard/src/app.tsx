// The dashboard's shell: configuration, sign-in, the caller's roles, the header (areas the role
// may see, live connection state, update interval) and the current route's page.

import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, can, type Me } from "./api";
import { devSignIn, finishOidc, signOut, startOidc, storedToken } from "./auth";
import type { Config } from "./config";
import { LiveClient, type Interval, type LiveState } from "./live";
import { AREAS, parseRoute, routeHash, timeParams, type Route } from "./route";
import { Overview } from "./overview";
import { ViewPage } from "./views";
import { setCurrency } from "./shape";

const INTERVALS: Interval[] = ["1s", "5s", "30s", "1m"];

function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return parseRoute(hash);
}

function SignIn(props: { config: Config; onToken: (t: string) => void }) {
  const [tenant, setTenant] = useState("demo");
  const [role, setRole] = useState("admin");
  const [error, setError] = useState("");
  if (props.config.auth.mode === "oidc") {
    const auth = props.config.auth;
    return (
      <main class="signin">
        <h1>Pulse</h1>
        <button class="primary" onClick={() => void startOidc(auth)}>
          Sign in
        </button>
      </main>
    );
  }
  return (
    <main class="signin">
      <h1>Pulse</h1>
      <p>Local cloud: sign in as any tenant and role.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          devSignIn(props.config.apiUrl, tenant, role).then(props.onToken, (err: Error) => setError(err.message));
        }}
      >
        <label>
          Tenant
          <input name="tenant" value={tenant} onInput={(e) => setTenant(e.currentTarget.value)} required />
        </label>
        <label>
          Role
          <select name="role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            <option value="admin">admin</option>
            <option value="analyst">analyst</option>
            <option value="viewer">viewer</option>
          </select>
        </label>
        <button class="primary" type="submit">
          Sign in
        </button>
        {error && <p role="alert">{error}</p>}
      </form>
    </main>
  );
}

const STATE_TEXT: Record<LiveState, string> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

export function App(props: { config: Config }) {
  const { config } = props;
  const [token, setToken] = useState<string | null>(storedToken());
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState("");
  const [state, setState] = useState<LiveState>("closed");
  const [interval, setInterval] = useState<Interval>(
    (localStorage.getItem("pulse.interval") as Interval | null) ?? "5s",
  );
  const route = useRoute();

  useEffect(() => {
    if (token || config.auth.mode !== "oidc") return;
    finishOidc(config.auth).then((t) => t && setToken(t), (e: Error) => setError(e.message));
  }, []);

  const api = useMemo(
    () =>
      new Api(config.apiUrl, storedToken, () => {
        signOut();
        setToken(null);
      }),
    [config.apiUrl],
  );
  const live = useMemo(() => new LiveClient({ url: config.wsUrl, token: storedToken }), [config.wsUrl]);

  useEffect(() => {
    if (!token) return;
    // Money is shown in the tenant's currency from the first render on (none: plain numbers).
    const settings = api.get<{ currency?: string | null }>("/api/v1/settings").then((s) => setCurrency(s.currency), () => {});
    Promise.all([api.get<Me>("/api/v1/me"), settings]).then(([m]) => setMe(m), (e: Error) => setError(e.message));
    live.start();
    const off = live.onState(setState);
    return () => {
      off();
      live.stop();
    };
  }, [token]);

  if (!token) return <SignIn config={config} onToken={setToken} />;
  if (!me) return <main class="loading">{error ? <p role="alert">{error}</p> : "Loading…"}</main>;

  const areas = AREAS.filter((a) => can(me, a.role));
  const allowed = areas.some((a) => a.area === route.area);
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <a class="brand" href="#/overview/overview" aria-label="Pulse overview">
          Pulse
        </a>
        <nav aria-label="Areas">
          {areas.map((a) => (
            <a key={a.area} href={routeHash({ area: a.area, view: a.views[0], params: timeParams(route) })} aria-current={route.area === a.area ? "page" : undefined}>
              {a.label}
            </a>
          ))}
        </nav>
        <div class="status">
          <span class={`live-state ${state}`} role="status" aria-live="polite" data-state={state}>
            {STATE_TEXT[state]}
          </span>
          <label class="interval">
            <span class="sr-only">Update interval</span>
            <select
              value={interval}
              aria-label="Update interval"
              onChange={(e) => {
                const v = e.currentTarget.value as Interval;
                localStorage.setItem("pulse.interval", v);
                setInterval(v);
              }}
            >
              {INTERVALS.map((i) => (
                <option key={i} value={i}>
                  every {i}
                </option>
              ))}
            </select>
          </label>
          <span class="who" title={me.subject}>
            {me.tenant} · {me.role}
          </span>
          <button
            class="link"
            onClick={() => {
              signOut();
              live.stop();
              setMe(null);
              setToken(null);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {!allowed ? (
          <p role="alert">Your role may not see this area.</p>
        ) : route.area === "overview" ? (
          <Overview api={api} live={live} me={me} interval={interval} />
        ) : (
          <ViewPage key={`${route.area}/${route.view}`} api={api} live={live} me={me} route={route} interval={interval} />
        )}
      </main>
    </div>
  );
}
