// pagerace presenter mode (?present=1): opens a live room and drives it from this dashboard.
//
// The dashboard keeps working as it always does (server-rendered frames over htmx). After
// each frame this file tells the room what changed, in /ws/run's own words: `step` when the
// presenter took one step, `back` / `goto` when they moved along the same schedule, `load`
// for anything else (another kernel, a found bug, an edited schedule), `explore` for
// "Explore all". The token lives in sessionStorage, never in the URL, so the address bar
// can be shared.
import { $, ROOT, UNAVAILABLE, badge, frameData, openSocket, say } from "./core.js";

(function () {
  if (!document.body.classList.contains("present")) { return; }
  var KEY = "pagerace.room-token.";
  var room = new URLSearchParams(window.location.search).get("room");
  // A present_url from POST /api/rooms carries the token in the #fragment: keep it for this
  // tab only and take it out of the address bar.
  var given = /^#token=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (room && given) {
    window.sessionStorage.setItem(KEY + room, given[1]);
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  // The presenter's room outlives presenter mode: leaving it (p) to copy a diagram or edit,
  // a reload or a second tab must not strand the audience in a room nobody drives. The last
  // room and its token are kept in this browser's localStorage (rooms expire when idle).
  var LAST = "pagerace.presenter-room";
  function stored() {
    try {
      var raw = JSON.parse(window.localStorage.getItem(LAST) || "null");
      return raw && typeof raw.room === "string" && typeof raw.token === "string" ? raw : null;
    } catch (e) { return null; }
  }
  function remember(r, t) {
    try { window.localStorage.setItem(LAST, JSON.stringify({ room: r, token: t })); } catch (e) { /* private mode */ }
  }
  function forget(r) {
    var last = stored();
    try { if (last && last.room === r) { window.localStorage.removeItem(LAST); } } catch (e) { /* private mode */ }
  }
  var last0 = stored();
  var token = room ? window.sessionStorage.getItem(KEY + room) : null;
  if (room && !token && last0 && last0.room === room) { token = last0.token; }
  if (!room && last0) { room = last0.room; token = last0.token; }
  var reused = Boolean(room && token);
  var socket = null;
  var last = null;

  function roomStatus(text, kind) { badge("room-status", text, kind); }

  function view(data) {
    return {
      id: data.id,
      scenario: data.diagram_request.scenario,
      variant: data.query.v || null,
      schedule: data.query.t ? data.query.t.split(",") : [],
      at: data.at
    };
  }

  function same(a, b) { return a.length === b.length && a.every(function (x, i) { return x === b[i]; }); }

  // The schedule after stepping `actor` at `at`: app.links.step_schedule, mirrored.
  function stepped(schedule, at, actor) {
    if (schedule[at] === actor) { return schedule; }
    return schedule.slice(0, at).concat([actor]);
  }

  function loadOf(v) {
    return { type: "load", scenario: v.scenario, variant: v.variant, schedule: v.schedule, at: v.at };
  }

  // What the room must be told to go from `a` to `b`.
  function diff(a, b) {
    if (!a || a.id !== b.id || a.variant !== b.variant ||
        JSON.stringify(a.scenario) !== JSON.stringify(b.scenario)) { return loadOf(b); }
    if (b.at === a.at + 1 && b.at <= b.schedule.length) {
      var actor = b.schedule[a.at];
      if (same(stepped(a.schedule, a.at, actor), b.schedule)) { return { type: "step", actor: actor }; }
    }
    if (same(a.schedule, b.schedule)) {
      if (b.at === a.at) { return null; }
      return b.at === a.at - 1 ? { type: "back" } : { type: "goto", index: b.at };
    }
    return loadOf(b);
  }

  function send(message) {
    if (!message) { return; }
    if (socket) { socket.send(message); }
  }

  // The address bar keeps presenter mode and the room (but never the token).
  function keepUrl() {
    var data = frameData();
    if (!data || !room) { return; }
    var url = ROOT + data.page_url + (data.page_url.indexOf("?") < 0 ? "?" : "&") + "present=1&room=" + room;
    window.history.replaceState(null, "", url);
  }

  function showCorner(followUrl) {
    var link = $("#follow-url");
    if (link) { link.textContent = followUrl.replace(/^https?:\/\//, ""); link.href = followUrl; }
    var qr = $("#follow-qr");
    if (qr) { qr.src = ROOT + "/live/" + room + "/qr.svg"; qr.hidden = false; }
    // A QR code of 127.0.0.1 sends every phone in the room to itself: say so on the slide.
    var host = "";
    try { host = new URL(followUrl).hostname; } catch (e) { host = ""; }
    var warn = $("#follow-warn");
    if (warn) { warn.hidden = !/^(127\.|localhost$|\[::1\]$|::1$)/.test(host); }
  }

  function connect() {
    socket = openSocket(function () {
      return "/ws/rooms/" + room + "?token=" + encodeURIComponent(token);
    }, {
      open: function () {
        roomStatus("● live: followers see every step", "on");
        // Whatever the room had, it now shows what is on this screen.
        last = view(frameData());
        send(loadOf(last));
      },
      message: function (msg) {
        if (msg.type === "error") { say("⚠ room: " + msg.message); }
      },
      close: function (ev) {
        if (ev.code !== 4404 && ev.code !== 4403) { return false; }
        forget(room);
        if (reused) {
          // The remembered room expired (or is another presenter's): open a fresh one.
          reused = false;
          room = null;
          token = null;
          createRoom();
          return true;
        }
        roomStatus("✖ the room is gone: press p twice for a new one", "off");
        return true;
      },
      retry: function (ev, wait) {
        if (ev.code === UNAVAILABLE) {  // the room store (Redis) is down
          roomStatus("○ " + (ev.reason || "live rooms are down") + " · retrying in " +
            Math.round(wait / 1000) + " s", "off");
        } else {
          roomStatus("○ reconnecting…", "off");
        }
      }
    });
  }

  function start() {
    var data = frameData();
    if (!data) { return; }
    if (room && token) {
      window.sessionStorage.setItem(KEY + room, token);
      remember(room, token);
      keepUrl();
      showCorner(window.location.origin + ROOT + "/live/" + room);
      connect();
      return;
    }
    createRoom();
  }

  function createRoom() {
    var data = frameData();
    if (!data) { return; }
    var v = view(data);
    fetch(ROOT + "/api/rooms", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scenario: v.scenario, variant: v.variant, schedule: v.schedule, at: v.at })
    }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) { throw new Error(body.detail || res.statusText); }
        return body;
      });
    }).then(function (created) {
      room = created.room;
      token = created.presenter_token;
      window.sessionStorage.setItem(KEY + room, token);
      remember(room, token);
      keepUrl();
      showCorner(created.follow_url);
      connect();
    }).catch(function (err) { roomStatus("✖ no live room: " + err.message, "off"); });
  }

  document.body.addEventListener("htmx:afterSettle", function (ev) {
    var id = ev.target && ev.target.id;
    if (id === "frame") {
      keepUrl();
      var next = view(frameData());
      send(diff(last, next));
      last = next;
    } else if (id === "outcomes") {
      send({ type: "explore" });
    }
  });
  start();
}());
