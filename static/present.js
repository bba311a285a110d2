// pagerace presenter mode (?present=1): opens a live room and drives it from this dashboard.
//
// The dashboard keeps working as it always does (server-rendered frames over htmx). After
// each frame this file tells the room what changed, in /ws/run's own words, as the server
// wrote them: the control that asked for the frame carries its message (`data-intent`: a
// `step`, `back` or `goto`), and any other frame (another kernel, a found bug, a timeline
// click) sends the frame's own `load` from its JSON island; "Explore all" sends `explore`.
// Nothing here works out a schedule or a URL. The token lives in sessionStorage, never in
// the URL, so the address bar can be shared.
import { $, UNAVAILABLE, badge, frameData, openSocket, say } from "./core.js";

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
  var pending = null;  // the intent of the control whose frame is on its way
  var dash = document.getElementById("dash");
  // The room sockets' path (root included), from the server; the room id is appended.
  var SOCKETS = dash ? dash.getAttribute("data-room-sockets") : "";

  function roomStatus(text, kind) { badge("room-status", text, kind); }

  function send(message) {
    if (!message) { return; }
    if (socket) { socket.send(message); }
  }

  // The address bar keeps presenter mode and the room (but never the token): the room's
  // socket says where each step is (`present_url`).
  function keepUrl(url) {
    if (url) { window.history.replaceState(null, "", url); }
  }

  function showCorner(followUrl, qrUrl) {
    var link = $("#follow-url");
    if (link) { link.textContent = followUrl.replace(/^https?:\/\//, ""); link.href = followUrl; }
    var qr = $("#follow-qr");
    if (qr && qrUrl) { qr.src = qrUrl; qr.hidden = false; }
    // A QR code of 127.0.0.1 sends every phone in the room to itself: say so on the slide.
    var host = "";
    try { host = new URL(followUrl).hostname; } catch (e) { host = ""; }
    var warn = $("#follow-warn");
    if (warn) { warn.hidden = !/^(127\.|localhost$|\[::1\]$|::1$)/.test(host); }
  }

  function connect() {
    socket = openSocket(function () {
      return SOCKETS + room + "?token=" + encodeURIComponent(token);
    }, {
      open: function () {
        roomStatus("● live: followers see every step", "on");
        // Whatever the room had, it now shows what is on this screen.
        send(frameData().load);
      },
      message: function (msg) {
        if (msg.type === "error") { say("⚠ room: " + msg.message); }
        if (msg.type === "room" && msg.follow_url) {
          showCorner(new URL(msg.follow_url, window.location.href).href, msg.qr_url);
        }
        keepUrl(msg.present_url);
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
      connect();
      return;
    }
    createRoom();
  }

  function createRoom() {
    var data = frameData();
    if (!data) { return; }
    fetch(data.rooms_url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data.diagram_request)  // where this frame stands
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
      keepUrl(created.present_url.split("#")[0]);  // the token stays out of the address bar
      showCorner(created.follow_url);
      connect();
    }).catch(function (err) { roomStatus("✖ no live room: " + err.message, "off"); });
  }

  // The control that asked for a frame (a click, or a key that activates it) says what the
  // room is told; a frame nobody's control asked for (a timeline click) is loaded as shown.
  document.body.addEventListener("htmx:beforeRequest", function (ev) {
    var elt = ev.detail && ev.detail.elt;
    var intent = elt && elt.getAttribute ? elt.getAttribute("data-intent") : null;
    pending = intent ? JSON.parse(intent) : null;
  });
  document.body.addEventListener("htmx:afterSettle", function (ev) {
    var id = ev.target && ev.target.id;
    if (id === "frame") {
      var data = frameData();
      send(pending || (data && data.load));
      pending = null;
    } else if (id === "outcomes") {
      send({ type: "explore" });
    }
  });
  start();
}());
