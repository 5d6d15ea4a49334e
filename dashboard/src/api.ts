// The HTTP API with the signed-in token. A 401 means the token expired: the app signs out.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
  }
}

export interface Me {
  tenant: string;
  subject: string;
  roles: string[];
  role: "admin" | "analyst" | "viewer";
}

const RANK = { viewer: 0, analyst: 1, admin: 2 } as const;

/** Whether `me` has at least `role`. */
export function can(me: Me | null, role: keyof typeof RANK): boolean {
  return !!me && RANK[me.role] >= RANK[role];
}

export class Api {
  constructor(
    readonly base: string,
    private readonly token: () => string | null,
    private readonly onUnauthorized: () => void = () => {},
  ) {}

  async get<T>(path: string, params: Record<string, string | undefined> = {}): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, v);
    const qs = q.toString();
    return this.request<T>("GET", `${path}${qs ? `?${qs}` : ""}`);
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, body);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token() ?? ""}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) this.onUnauthorized();
    if (!res.ok) {
      let detail = res.statusText;
      try {
        detail = ((await res.json()) as { detail?: string }).detail ?? detail;
      } catch {
        // not a problem document
      }
      throw new ApiError(res.status, detail);
    }
    return (await res.json()) as T;
  }
}
