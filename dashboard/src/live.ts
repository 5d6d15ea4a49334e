// The WebSocket client of the live API: one connection, subscriptions that survive reconnects,
// and automatic reconnection with exponential backoff and full jitter.
//
// API Gateway closes a connection after two hours (or the network drops it); the client then
// reconnects after min(max, base * 2^attempt) * random() ms and re-subscribes every
// subscription with `resume` set to the last seq it saw, so the server's snapshot continues the
// sequence. The socket factory, the clock's timers and the random source are injected so the
// reconnection schedule is unit-tested without a network.

export type Interval = "1s" | "5s" | "30s" | "1m";
export type LiveState = "connecting" | "open" | "reconnecting" | "closed";

/** A frame from the server. */
export interface ServerFrame {
  type: "ack" | "snapshot" | "metrics_update" | "error" | "pong";
  id?: string;
  subscription?: string;
  seq?: number;
  part?: number;
  status?: number;
  detail?: string;
  data?: Record<string, unknown>;
}

/** What a subscription follows: metrics by name, or a metrics query. */
export type Target = { metrics: string[] } | { query: Record<string, unknown> };

/** The minimum of the WebSocket API this client uses (browsers' WebSocket fits). */
export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export interface LiveOptions {
  /** The WebSocket URL without the token. */
  url: string;
  /** The current token (read at each connect: it may have been refreshed). */
  token: () => string | null;
  socket?: (url: string) => SocketLike;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  random?: () => number;
  /** First backoff ceiling, ms. */
  baseDelay?: number;
  /** Largest backoff ceiling, ms. */
  maxDelay?: number;
  /** A connection that stayed open this long resets the backoff, ms. */
  stableAfter?: number;
  now?: () => number;
}

interface Sub {
  clientId: string;
  target: Target;
  interval: Interval;
  onData: (frame: ServerFrame) => void;
  onError?: (frame: ServerFrame) => void;
  /** The server's id on the current connection. */
  serverId?: string;
  lastSeq?: number;
}

/** The delay before reconnect attempt `attempt` (0-based): full jitter under an exponential ceiling. */
export function backoff(attempt: number, random: () => number, base = 500, max = 30_000): number {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 16));
  return Math.floor(ceiling * random());
}

export class LiveClient {
  private readonly opts: Required<Omit<LiveOptions, "url" | "token">> & Pick<LiveOptions, "url" | "token">;
  private ws: SocketLike | null = null;
  private subs = new Map<string, Sub>();
  private attempt = 0;
  private timer: unknown = null;
  private openedAt: number | null = null;
  private stopped = false;
  private counter = 0;
  private listeners = new Set<(s: LiveState) => void>();
  state: LiveState = "closed";
  /** Delays of the reconnects scheduled so far (for tests and the status tooltip). */
  readonly delays: number[] = [];

  constructor(options: LiveOptions) {
    this.opts = {
      socket: (url) => new WebSocket(url) as unknown as SocketLike,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      random: Math.random,
      baseDelay: 500,
      maxDelay: 30_000,
      stableAfter: 10_000,
      now: () => Date.now(),
      ...options,
    };
  }

  /** Calls `fn` on every state change; returns the unsubscribe. */
  onState(fn: (s: LiveState) => void): () => void {
    this.listeners.add(fn);
    fn(this.state);
    return () => this.listeners.delete(fn);
  }

  private setState(s: LiveState) {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.listeners) fn(s);
  }

  start() {
    this.stopped = false;
    if (!this.ws) this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) this.opts.clearTimer(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.setState("closed");
  }

  /** Follows `target` at `interval`; returns a function that ends the subscription. */
  subscribe(
    target: Target,
    interval: Interval,
    onData: (frame: ServerFrame) => void,
    onError?: (frame: ServerFrame) => void,
  ): () => void {
    const clientId = `c${++this.counter}`;
    const sub: Sub = { clientId, target, interval, onData, onError };
    this.subs.set(clientId, sub);
    if (this.state === "open") this.sendSubscribe(sub);
    return () => {
      this.subs.delete(clientId);
      if (sub.serverId && this.state === "open") {
        this.send({ action: "unsubscribe", id: `u${clientId}`, subscription: sub.serverId });
      }
    };
  }

  private send(frame: Record<string, unknown>) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
  }

  private sendSubscribe(sub: Sub) {
    sub.serverId = undefined;
    this.send({
      action: "subscribe",
      id: sub.clientId,
      ...sub.target,
      interval: sub.interval,
      ...(sub.lastSeq !== undefined ? { resume: sub.lastSeq } : {}),
    });
  }

  private connect() {
    const token = this.opts.token();
    if (!token) {
      this.setState("closed");
      return;
    }
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const sep = this.opts.url.includes("?") ? "&" : "?";
    const ws = this.opts.socket(`${this.opts.url}${sep}token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.openedAt = this.opts.now();
      this.setState("open");
      for (const sub of this.subs.values()) this.sendSubscribe(sub);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(ev.data) as ServerFrame;
      } catch {
        return;
      }
      this.dispatch(frame);
    };
    ws.onerror = () => {
      // A close event always follows; reconnection is decided there.
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (this.openedAt !== null && this.opts.now() - this.openedAt >= this.opts.stableAfter) this.attempt = 0;
      this.openedAt = null;
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect() {
    const delay = backoff(this.attempt, this.opts.random, this.opts.baseDelay, this.opts.maxDelay);
    this.attempt += 1;
    this.delays.push(delay);
    this.setState("reconnecting");
    this.timer = this.opts.setTimer(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  private dispatch(frame: ServerFrame) {
    if (frame.type === "ack" && frame.id) {
      const sub = this.subs.get(frame.id);
      if (sub && frame.subscription) sub.serverId = frame.subscription;
      return;
    }
    if (frame.type === "error") {
      const sub = frame.id ? this.subs.get(frame.id) : undefined;
      sub?.onError?.(frame);
      return;
    }
    if (frame.type === "snapshot" || frame.type === "metrics_update") {
      for (const sub of this.subs.values()) {
        if (sub.serverId === frame.subscription) {
          if (typeof frame.seq === "number") sub.lastSeq = frame.seq;
          sub.onData(frame);
        }
      }
    }
  }
}
