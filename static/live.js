// pagerace live room, follower side (/live/{room}): mirrors the presenter over
// /ws/rooms/{room}. Every numbered message is logged in order; the frame shows the latest
// step, fetched from the server (the same rendering as the dashboard), one fetch at a time.
// Every URL comes from the server, and so does what a message means for the frame: a kernel
// switch's A/B frame (cmp=) and a found bug's summary (found=1) are in the frame_url it sends.
import { $, UNAVAILABLE, badge, frameData, openSocket, say } from "./core.js";

(function () {
  var dash = document.getElementById("dash");
  if (!dash || !document.body.classList.contains("live")) { return; }
  var room = dash.getAttribute("data-room");
  // Close codes after which reconnecting cannot help (4429: too many unknown rooms).
  var FINAL = { 4403: true, 4404: true, 4409: true, 4429: true, 1008: true };
  var ended = false;
  var seen = -1;
  var wanted = null;
  var fetching = false;
  var shownId = currentId();

  function status(text, kind) { badge("live-status", text, kind); }

  // The scenario the frame on screen belongs to.
  function currentId() {
    var data = frameData();
    return data ? data.id : null;
  }

  function logLine(msg) {
    var list = $("#live-log");
    if (!list) { return; }
    var li = document.createElement("li");
    li.setAttribute("data-seq", String(msg.seq));
    if (msg.type === "transition") {
      li.className = "log-step";
      li.setAttribute("data-index", String(msg.index));
      li.setAttribute("data-actor", msg.actor);
      var head = document.createElement("code");
      head.textContent = "#" + msg.index + " " + msg.actor + " · " + msg.function;
      li.appendChild(head);
      li.appendChild(document.createTextNode(" " + (msg.note || "")));
      if (msg.point_of_no_return === msg.index) {
        // The step after which every continuation breaks an invariant (engine.doom).
        var lost = document.createElement("strong");
        lost.className = "log-no-return";
        lost.textContent = " ⊘ point of no return";
        li.appendChild(lost);
      }
      if (msg.violations && msg.violations.length) {
        var bad = document.createElement("strong");
        bad.className = "log-bad";
        bad.textContent = " ✖ " + msg.violations.map(function (v) { return v.name; }).join(", ");
        li.appendChild(bad);
      }
    } else if (msg.switched) {
      li.className = "log-jump log-kernel";
      li.textContent = "⇄ the presenter switched to kernel " + (msg.kernel || msg.switched) +
        " (" + msg.switched + "): same schedule, step " + msg.at + " of " + msg.schedule.length;
    } else {
      li.className = "log-jump";
      li.textContent = "↺ now at step " + msg.at + " of " + msg.schedule.length;
    }
    list.appendChild(li);
    // Scroll the log box only, never the page: a phone follower reads the narration and the
    // state at the top, and scrollIntoView would drag the whole page down to the log.
    list.scrollTop = list.scrollHeight;
  }

  // Show the latest wanted frame; frames in between are skipped (the log keeps every step).
  function pump() {
    if (fetching || !wanted) { return; }
    var next = wanted;
    wanted = null;
    if (next.scenario !== shownId) {
      // Another scenario (or the first one): the server renders the room's page afresh.
      window.location.reload();
      return;
    }
    fetching = true;
    var done = function () { fetching = false; pump(); };
    window.htmx.ajax("GET", next.url, { target: "#frame", swap: "innerHTML" }).then(done, done);
  }

  function onMessage(msg) {
    if (msg.type === "room") {
      status("● live · room " + room + " · following the presenter", "on");
      return;
    }
    if (msg.type === "error") { say("⚠ " + msg.message); return; }
    if (msg.type === "ended") {
      // The room is gone (expired, or lost by the store): say so and stop for good.
      ended = true;
      status("✖ " + msg.message, "off");
      say("");
      return;
    }
    if (typeof msg.seq === "number") {
      if (msg.seq < seen) { return; }
      seen = msg.seq;
    }
    if (msg.type === "presenter") {
      say(msg.connected ? "" : "⏸ " + msg.message);
      return;
    }
    if (msg.type === "state" || msg.type === "transition") {
      say("");
      logLine(msg);
      if (msg.page_url && $("#open-own")) { $("#open-own").setAttribute("href", msg.page_url); }
      if (msg.frame_url) { wanted = { url: msg.frame_url, scenario: msg.scenario_id }; pump(); }
    } else if (msg.type === "progress") {
      say("exploring every interleaving… " + msg.states + " states");
    } else if (msg.type === "outcomes") {
      say("explored: " + msg.states + " states, " + msg.interleavings + " interleavings");
      if (msg.outcomes_url) {
        window.htmx.ajax("GET", msg.outcomes_url, { target: "#outcomes", swap: "innerHTML" });
      }
    }
  }

  function connect() {
    openSocket(function () {
      return dash.getAttribute("data-socket");
    }, {
      message: onMessage,
      close: function (ev) {
        if (ended) { return true; }
        if (FINAL[ev.code]) {
          status("✖ " + (ev.reason || "this room is closed") + " (" + ev.code + ")", "off");
          return true;
        }
        return false;
      },
      retry: function (ev, wait) {
        var secs = Math.round(wait / 1000);
        if (ev.code === UNAVAILABLE) {
          status("○ " + (ev.reason || "the server cannot reach its room store") +
            " · retrying in " + secs + " s", "off");
        } else {
          status("○ reconnecting in " + secs + " s…", "off");
        }
      }
    });
  }

  // Followers watch: clicks on the run's controls would only make this page diverge.
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("#dash a, #dash button") : null;
    if (!el || el.id === "open-own" || el.closest("dialog")) { return; }
    ev.preventDefault();
    ev.stopPropagation();
    say("This page follows the presenter; “open this step” gives you your own copy.");
  }, true);
  document.body.addEventListener("htmx:afterSettle", function (ev) {
    if (ev.target && ev.target.id === "frame") { shownId = currentId(); }
  });
  connect();
}());
