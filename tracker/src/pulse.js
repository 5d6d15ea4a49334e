// Pulse tracking script. Install with
//   <script defer src="https://<dashboard>/pulse.js" data-site="s_..." data-api="https://<api>"></script>
// No cookies, no local storage: the server derives a daily, salted visitor hash. Page views
// are sent on load and on SPA navigation (history.pushState, popstate); `pulse(name, props)`
// sends a custom event. With data-respect-dnt, nothing is sent when Do Not Track is on.
// Beacons go as text/plain so browsers send them without a CORS preflight.
(function (w, d) {
  var script = d.currentScript;
  if (!script) return;
  var site = script.getAttribute('data-site');
  var api = script.getAttribute('data-api') || new URL(script.src, w.location.href).origin;
  var endpoint = api.replace(/\/$/, '') + '/api/v1/track';
  var respectDnt = script.hasAttribute('data-respect-dnt');
  var last = null;
  var queued = (w.pulse && w.pulse.q) || [];

  function blocked() {
    var n = w.navigator;
    if (respectDnt && (n.doNotTrack === '1' || w.doNotTrack === '1')) return true;
    return !!n.webdriver || !site;
  }

  function send(payload) {
    if (blocked()) return;
    payload.site = site;
    payload.url = w.location.href;
    if (d.referrer) payload.referrer = d.referrer;
    var body = JSON.stringify(payload);
    var n = w.navigator;
    if (n.sendBeacon && n.sendBeacon(endpoint, body)) return;
    if (w.fetch) {
      w.fetch(endpoint, { method: 'POST', body: body, keepalive: true, credentials: 'omit', headers: { 'content-type': 'text/plain' } })
        .catch(function () {});
    }
  }

  function pageview() {
    var href = w.location.href;
    if (href === last) return;
    last = href;
    send({ kind: 'page_view', title: d.title });
  }

  var push = w.history.pushState;
  w.history.pushState = function () {
    var result = push.apply(this, arguments);
    pageview();
    return result;
  };
  w.addEventListener('popstate', pageview);

  w.pulse = function (name, props) {
    send({ kind: 'event', name: String(name), props: props || undefined });
  };
  for (var i = 0; i < queued.length; i++) w.pulse.apply(null, queued[i]);

  pageview();
})(window, document);
