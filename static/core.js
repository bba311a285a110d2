// pagerace front end: the helpers the page scripts share (dashboard.js, editor.js, live.js,
// present.js import them). An ES module, no build step: the server stamps its asset version
// into the relative imports it serves (app/static_files.py), so "./core.js" is cached as
// long as the page that imports it, and no longer.

// Every URL the scripts use comes from the server (a JSON island, a data attribute, a room
// message), already under the sub-path it is served at: nothing here adds a prefix.

export function $(sel) { return document.querySelector(sel); }

// Write `text` into the element `sel`, if the page has one.
export function setText(sel, text) {
  const el = $(sel);
  if (el) { el.textContent = text; }
  return el;
}

// The page's status line, a polite live region: screen readers hear what it says.
export function say(text) { setText("#status-msg", text); }

// A status badge (#live-status, #room-status): its text, and its kind ("on", "off") as a
// class beside the one named like its id.
export function badge(id, text, kind) {
  const el = setText("#" + id, text);
  if (el) { el.className = id + " " + (kind || ""); }
}

// A JSON island: data-json on a hidden element (htmx swaps drop <script> islands).
export function readJSON(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.getAttribute("data-json")) : null;
}

export function frameData() { return readJSON("frame-data"); }

export function absolute(path) { return window.location.origin + path; }

// A number the server gave the page on <body> (data-NAME), e.g. the play delay.
export function bodyNumber(name) {
  return Number(document.body.getAttribute("data-" + name));
}

// Copy `text`, saying `done` (or `failed`) in the status line. The clipboard API needs a
// secure context; elsewhere (plain http on a LAN) a hidden textarea and execCommand do it.
export function copyText(text, done, failed) {
  const fallback = function () {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    say(ok ? done : failed);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(function () { say(done); }, fallback);
  } else {
    fallback();
  }
}

// --- figures -----------------------------------------------------------------------------

// The page's colours (dark mode included) and, on a projector, its larger type: plotly's
// defaults are white-background grid lines and 12 px labels.
function themed(layout) {
  const copy = Object.assign({}, layout);
  const grid = getComputedStyle(document.documentElement).getPropertyValue("--line").trim();
  copy.font = { color: getComputedStyle(document.body).color };
  if (document.body.classList.contains("present")) { copy.font.size = 18; }
  Object.keys(copy).forEach(function (key) {
    if (/^[xy]axis\d*$/.test(key) && grid) {
      copy[key] = Object.assign({ gridcolor: grid, zerolinecolor: grid }, copy[key]);
    }
  });
  if (grid && !copy.yaxis) { copy.yaxis = { gridcolor: grid, zerolinecolor: grid }; }
  return copy;
}

// Draw the server's figure `fig` ({data, layout}) into `el`, themed, with `traces` in place
// of fig.data if given; `onClick(point)` is bound once per element. Plotly's responsive
// resize sizes a chart from its container, and an empty container is only as tall as its
// CSS min-height: after a window resize (a projector plugged in) the chart was drawn over
// the controls below it. The container keeps the figure's height.
export function drawFigure(el, fig, traces, onClick) {
  if (!el || !fig || !window.Plotly) { return; }
  if (fig.layout && fig.layout.height) { el.style.height = fig.layout.height + "px"; }
  window.Plotly.react(el, traces || fig.data, themed(fig.layout), { displayModeBar: false, responsive: true });
  if (onClick && !el.dataset.bound) {
    el.dataset.bound = "1";
    el.on("plotly_click", function (ev) {
      const point = ev.points && ev.points[0];
      if (point) { onClick(point); }
    });
  }
}

// --- sockets -----------------------------------------------------------------------------

// 1013 "try again later": the server's room store is down; retry, but slowly.
export const UNAVAILABLE = 1013;

// A WebSocket to `path()` (a server-made path) that reconnects with exponential backoff:
// 2 s doubling to 30 s after a 1013, else 0.5 s doubling to 10 s. `on.close(ev)` returning
// true means "do not reconnect" (a final close code, or the page took over); otherwise
// `on.retry(ev, delayMs)` may say so before the wait. The backoff resets only once a
// connection has carried a message: a server that accepts and then drops every socket
// (its store down) is not retried every half second. Returns {send}, which sends JSON
// while the socket is open and drops the message otherwise.
export function openSocket(path, on) {
  let socket = null;
  let retries = 0;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + path());
    socket.onopen = function () { if (on.open) { on.open(); } };
    socket.onmessage = function (ev) {
      retries = 0;
      on.message(JSON.parse(ev.data));
    };
    socket.onclose = function (ev) {
      if (on.close && on.close(ev)) { return; }
      retries += 1;
      const delay = ev.code === UNAVAILABLE
        ? Math.min(30000, 2000 * Math.pow(2, retries))
        : Math.min(10000, 500 * Math.pow(2, retries));
      if (on.retry) { on.retry(ev, delay); }
      window.setTimeout(connect, delay);
    };
  }
  connect();
  return {
    send: function (message) {
      if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
    }
  };
}
