// The WebSocket client's reconnection and subscriptions, against a fake socket and fake timers.
import { describe, expect, it } from "vitest";
import { LiveClient, backoff, type SocketLike } from "../src/live";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({});
  }
  receive(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

function harness(random = () => 0.5) {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  let now = 0;
  const client = new LiveClient({
    url: "ws://live.test",
    token: () => "tok en",
    socket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
    random,
    now: () => now,
  });
  const fire = () => timers.shift()?.fn();
  return { client, sockets, timers, fire, advance: (ms: number) => (now += ms) };
}

describe("backoff", () => {
  it("grows exponentially up to the ceiling, with full jitter", () => {
    // Given a random source at its maximum, the delays are the ceilings
    const top = () => 0.999999;
    const delays = [0, 1, 2, 3, 10].map((a) => backoff(a, top, 500, 30_000));
    expect(delays).toEqual([499, 999, 1999, 3999, 29_999]);
    // And a random source at zero reconnects at once: jitter spans the whole interval
    expect(backoff(5, () => 0)).toBe(0);
  });
});

describe("LiveClient", () => {
  it("connects with the token, subscribes when open and hands frames to the subscriber", () => {
    const { client, sockets } = harness();
    const frames: unknown[] = [];
    client.subscribe({ metrics: ["page_view"] }, "5s", (f) => frames.push(f));
    client.start();
    expect(sockets[0].url).toBe("ws://live.test?token=tok%20en");
    expect(client.state).toBe("connecting");
    sockets[0].open();
    expect(client.state).toBe("open");
    expect(sockets[0].sent).toEqual([{ action: "subscribe", id: "c1", metrics: ["page_view"], interval: "5s" }]);
    sockets[0].receive({ type: "ack", id: "c1", subscription: "s1" });
    sockets[0].receive({ type: "snapshot", subscription: "s1", seq: 1, data: { page_view: { count: 2 } } });
    sockets[0].receive({ type: "metrics_update", subscription: "s9", seq: 5, data: {} });
    expect(frames).toEqual([{ type: "snapshot", subscription: "s1", seq: 1, data: { page_view: { count: 2 } } }]);
  });

  it("reconnects with growing jittered delays and resumes each subscription from its last seq", () => {
    // Given an open connection whose subscription has seen seq 7
    const { client, sockets, timers, fire } = harness(() => 0.5);
    const states: string[] = [];
    client.onState((s) => states.push(s));
    client.subscribe({ query: { metric_name: "page_view", time_range: "1h" } }, "1s", () => {});
    client.start();
    sockets[0].open();
    sockets[0].receive({ type: "ack", id: "c1", subscription: "s1" });
    sockets[0].receive({ type: "metrics_update", subscription: "s1", seq: 7, data: {} });
    // When the connection drops, and the next two attempts fail
    sockets[0].drop();
    expect(client.state).toBe("reconnecting");
    expect(timers[0].ms).toBe(250);
    fire();
    sockets[1].drop();
    expect(timers[0].ms).toBe(500);
    fire();
    sockets[2].drop();
    expect(timers[0].ms).toBe(1000);
    fire();
    // Then the fourth socket, once open, re-subscribes with resume = 7
    sockets[3].open();
    expect(sockets[3].sent).toEqual([
      { action: "subscribe", id: "c1", query: { metric_name: "page_view", time_range: "1h" }, interval: "1s", resume: 7 },
    ]);
    expect(client.delays).toEqual([250, 500, 1000]);
    expect(states).toEqual(["closed", "connecting", "open", "reconnecting", "open"]);
  });

  it("resets the backoff after a connection that stayed up, and stops for good on stop()", () => {
    const { client, sockets, timers, fire, advance } = harness(() => 0.5);
    client.start();
    sockets[0].open();
    sockets[0].drop();
    fire();
    sockets[1].drop();
    fire();
    // A connection that stays up for a minute
    sockets[2].open();
    advance(60_000);
    sockets[2].drop();
    expect(timers.at(-1)?.ms).toBe(250);
    fire();
    sockets[3].open();
    client.stop();
    expect(client.state).toBe("closed");
    expect(timers.length).toBe(0);
    expect(sockets.length).toBe(4);
  });

  it("unsubscribes by the server's id, and routes error frames to their subscriber", () => {
    const { client, sockets } = harness();
    const errors: unknown[] = [];
    const off = client.subscribe({ metrics: ["order"] }, "30s", () => {}, (e) => errors.push(e.status));
    client.start();
    sockets[0].open();
    sockets[0].receive({ type: "error", id: "c1", status: 403, detail: "your role may not see order" });
    expect(errors).toEqual([403]);
    sockets[0].receive({ type: "ack", id: "c1", subscription: "s4" });
    off();
    expect(sockets[0].sent.at(-1)).toEqual({ action: "unsubscribe", id: "uc1", subscription: "s4" });
  });
});
