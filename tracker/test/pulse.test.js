// The tracking script in a small fake browser: what it sends, when, and how big it is.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const zlib = require('node:zlib');

const built = fs.readFileSync(path.join(__dirname, '..', 'dist', 'pulse.js'), 'utf8');

/** Runs the built script in a fake window; returns the window and what it sent. */
function browser({ attributes = {}, beacon = true, doNotTrack = '0', webdriver = false } = {}) {
  const sent = [];
  const listeners = {};
  const location = { href: 'https://shop.example/pricing?utm_source=mail' };
  const attrs = { 'data-site': 's_123', 'data-api': 'https://api.example/', ...attributes };
  const window = {
    location,
    doNotTrack: undefined,
    navigator: {
      doNotTrack,
      webdriver,
      sendBeacon: beacon ? (url, body) => { sent.push({ via: 'beacon', url, body: JSON.parse(body) }); return true; } : undefined,
    },
    fetch: (url, init) => { sent.push({ via: 'fetch', url, body: JSON.parse(init.body), init }); return Promise.resolve(); },
    history: { pushState(_state, _title, url) { location.href = new URL(url, location.href).href; } },
    addEventListener: (type, fn) => { listeners[type] = fn; },
  };
  const document = {
    title: 'Pricing',
    referrer: 'https://www.google.com/',
    currentScript: {
      src: 'https://cdn.example/pulse.js',
      getAttribute: (name) => (name in attrs ? attrs[name] : null),
      hasAttribute: (name) => name in attrs,
    },
  };
  vm.runInNewContext(built, { window, document, URL, JSON, String });
  return { window, sent, listeners, location };
}

test('sends a page view on load as a text beacon with site, url, referrer and title', () => {
  const { sent } = browser();
  assert.strictEqual(sent.length, 1);
  assert.strictEqual(sent[0].via, 'beacon');
  assert.strictEqual(sent[0].url, 'https://api.example/api/v1/track');
  assert.deepStrictEqual(sent[0].body, {
    kind: 'page_view', title: 'Pricing', site: 's_123',
    url: 'https://shop.example/pricing?utm_source=mail', referrer: 'https://www.google.com/',
  });
});

test('SPA navigation sends one page view per new URL, back and forward included', () => {
  const { window, sent, listeners, location } = browser();
  window.history.pushState({}, '', '/docs');
  window.history.pushState({}, '', '/docs');
  location.href = 'https://shop.example/pricing?utm_source=mail';
  listeners.popstate();
  assert.deepStrictEqual(sent.map((s) => s.body.url), [
    'https://shop.example/pricing?utm_source=mail',
    'https://shop.example/docs',
    'https://shop.example/pricing?utm_source=mail',
  ]);
});

test('pulse(name, props) sends a custom event', () => {
  const { window, sent } = browser();
  window.pulse('signup', { plan: 'pro' });
  assert.deepStrictEqual(sent[1].body.kind, 'event');
  assert.deepStrictEqual(sent[1].body.name, 'signup');
  assert.deepStrictEqual(sent[1].body.props, { plan: 'pro' });
});

test('falls back to fetch with keepalive and no credentials when sendBeacon is missing', () => {
  const { sent } = browser({ beacon: false });
  assert.strictEqual(sent[0].via, 'fetch');
  assert.strictEqual(sent[0].init.keepalive, true);
  assert.strictEqual(sent[0].init.credentials, 'omit');
  assert.strictEqual(sent[0].init.headers['content-type'], 'text/plain');
});

test('respects Do Not Track only when asked to, and never runs under automation', () => {
  assert.strictEqual(browser({ doNotTrack: '1' }).sent.length, 1, 'DNT ignored without the attribute');
  assert.strictEqual(browser({ doNotTrack: '1', attributes: { 'data-respect-dnt': '' } }).sent.length, 0);
  assert.strictEqual(browser({ webdriver: true }).sent.length, 0);
});

test('uses no cookies or storage and stays under 2 KB gzipped', () => {
  assert.ok(!/cookie|localStorage|sessionStorage/.test(built));
  const gz = zlib.gzipSync(built, { level: 9 }).length;
  assert.ok(gz <= 2048, `pulse.js is ${gz} bytes gzipped`);
  console.log(`pulse.js: ${built.length} bytes, ${gz} bytes gzipped`);
});
