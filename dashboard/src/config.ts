// The deployment's settings, read at start from /config.json (written by `pulse-local publish`
// after `sam deploy`, served by the local cloud in development), so one build runs anywhere.

export type AuthConfig =
  | { mode: "dev" }
  | { mode: "oidc"; domain: string; clientId: string; scope?: string };

export interface Config {
  /** HTTP API base URL; empty for the page's own origin. */
  apiUrl: string;
  /** WebSocket API URL. */
  wsUrl: string;
  auth: AuthConfig;
}

export async function loadConfig(fetcher: typeof fetch = fetch): Promise<Config> {
  const res = await fetcher("/config.json", { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: ${res.status}`);
  const c = (await res.json()) as Partial<Config>;
  if (typeof c.wsUrl !== "string" || !c.auth) throw new Error("config.json lacks wsUrl or auth");
  return { apiUrl: (c.apiUrl ?? "").replace(/\/$/, ""), wsUrl: c.wsUrl, auth: c.auth };
}
