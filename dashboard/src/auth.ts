// Sign-in. Deployed: the Cognito hosted UI with the OAuth 2.0 authorization-code flow and PKCE
// (RFC 7636; a public client, no secret): the verifier waits in sessionStorage while the browser
// visits the hosted UI, and the code comes back to this page. Locally: the local cloud's dev
// sign-in issues a token for a chosen tenant and role. The ID token is the bearer token: it
// carries the tenant and the groups (roles) the API's authorizer reads.

import type { AuthConfig } from "./config";

const TOKEN = "pulse.token";
const VERIFIER = "pulse.pkce";

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A PKCE verifier (43 characters) and its S256 challenge. */
export async function pkcePair(random: Uint8Array = crypto.getRandomValues(new Uint8Array(32))) {
  const verifier = base64url(random);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

/** The token's claims (not verified here: the API verifies every request). */
export function claims(token: string): Record<string, unknown> {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export function storedToken(): string | null {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) return null;
  const exp = Number(claims(token)["exp"] ?? 0);
  if (exp && exp * 1000 < Date.now() + 30_000) {
    sessionStorage.removeItem(TOKEN);
    return null;
  }
  return token;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

/** Local cloud: a token for `tenant` and `role`. */
export async function devSignIn(apiUrl: string, tenant: string, role: string): Promise<string> {
  const res = await fetch(`${apiUrl}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ tenant, role }),
  });
  if (!res.ok) throw new Error(`sign-in refused (${res.status})`);
  const { token } = (await res.json()) as { token: string };
  sessionStorage.setItem(TOKEN, token);
  return token;
}

function redirectUri(): string {
  return `${location.origin}/`;
}

/** Deployed: off to the hosted UI. */
export async function startOidc(auth: Extract<AuthConfig, { mode: "oidc" }>) {
  const { verifier, challenge } = await pkcePair();
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(VERIFIER, JSON.stringify({ verifier, state }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: auth.clientId,
    redirect_uri: redirectUri(),
    scope: auth.scope ?? "openid email profile",
    code_challenge_method: "S256",
    code_challenge: challenge,
    state,
  });
  location.assign(`${auth.domain.replace(/\/$/, "")}/oauth2/authorize?${q}`);
}

/** Deployed: back from the hosted UI with `?code=…&state=…`; exchanges the code for tokens. */
export async function finishOidc(auth: Extract<AuthConfig, { mode: "oidc" }>): Promise<string | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const saved = sessionStorage.getItem(VERIFIER);
  if (!code || !saved) return null;
  sessionStorage.removeItem(VERIFIER);
  const { verifier, state } = JSON.parse(saved) as { verifier: string; state: string };
  history.replaceState(null, "", location.pathname + location.hash);
  if (params.get("state") !== state) throw new Error("sign-in state mismatch");
  const res = await fetch(`${auth.domain.replace(/\/$/, "")}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: auth.clientId,
      code,
      redirect_uri: redirectUri(),
      code_verifier: verifier,
    }),
  });
  if (!res.ok) throw new Error(`token exchange failed (${res.status})`);
  const tokens = (await res.json()) as { id_token: string };
  sessionStorage.setItem(TOKEN, tokens.id_token);
  return tokens.id_token;
}
