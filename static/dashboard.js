// pagerace dashboard: draws the plotly charts, wires the keyboard, play, copy link/diagram.
// The server renders every state; htmx swaps #frame. This file only glues and draws.
import { $, absolute, bodyNumber, copyText, drawFigure, frameData, readJSON, say } from "./core.js";

(function () {
  // The autoplay step interval: the server's setting (play_delay_ms), on <body>.
  var PLAY_DELAY_MS = bodyNumber("play-delay");
  // A live room's follower (/live/{room}) only watches: no keys, no clicks that navigate,
  // and its address stays the room's. Presenter mode (?present=1) keeps its own parameters.
  var LIVE = document.body.classList.contains("live");
  var PRESENT = document.body.classList.contains("present");
  var playing = false;
  var playTimer = null;
  // The control the user acted on, to focus its successor after the frame is swapped: the
  // swap replaces it, and focus falling back to <body> sends Tab back to the page's start.
  var refocus = null;

  function drawTimeline() {
    var data = frameData();
    var el = $("#timeline");
    if (!data || !el || !window.Plotly) { return; }
    var fig = data.timeline;
    // Violation labels in the page's own text shade of vermillion (lighter in dark mode).
    var bad = getComputedStyle(document.documentElement).getPropertyValue("--bad-text").trim();
    var traces = fig.data.map(function (trace) {
      return bad && trace.textfont ? Object.assign({}, trace, { textfont: { color: bad } }) : trace;
    });
    drawFigure(el, fig, traces, function (point) {
      if (!LIVE && typeof point.x === "number") { goto(Math.round(point.x)); }
    });
  }

  function drawOutcomes() {
    drawFigure($("#outcomes-chart"), readJSON("outcomes-data"), null, function (point) {
      var btn = document.querySelector('.load-example[data-outcome="' + point.customdata + '"]');
      if (btn) { activate(btn); }
    });
  }

  // Go to step `at` of the current schedule (timeline clicks).
  function goto(at) {
    var data = frameData();
    if (!data || !window.htmx) { return; }
    var step = Math.max(0, Math.min(at, data.total));
    window.htmx.ajax("GET", data.goto_url, {
      source: $("#frame"), target: "#frame", swap: "innerHTML", values: { at: step }
    });
  }

  function presentHref(data) { return PRESENT ? data.page_url : data.present_url; }

  // What identifies a control across swaps: its id, its actor's key or its kernel variant.
  function focusKey(el) {
    if (!el || el === document.body || !el.closest || !el.closest("#frame, #player")) { return null; }
    if (el.id) { return "#" + el.id; }
    var key = el.getAttribute("data-step-key");
    if (key) { return '.actor .step[data-step-key="' + key + '"]'; }
    var variant = el.getAttribute("data-variant");
    if (variant) { return '.kernel [data-variant="' + variant + '"]'; }
    return null;
  }

  function restoreFocus() {
    var key = refocus;
    refocus = null;
    if (!key) { return; }
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) { return; }
    var el = document.querySelector(key);
    // A finished actor's Step button is disabled: the next actor that can run, else the
    // player's back button, keeps the user in the same part of the page.
    if (!el || el.disabled) {
      el = document.querySelector(key.indexOf(".step") >= 0 ? ".actor a.step" : ".kernel .seg.active");
    }
    if (!el) { el = document.querySelector("#btn-back:not([disabled]), #btn-forward:not([disabled])"); }
    if (el) { el.focus(); }
  }

  // The step sentence, read out by screen readers (a region outside the swapped frame).
  function announce() {
    var out = $("#announce");
    var narration = $("#narration");
    if (out && narration) { out.textContent = narration.textContent.replace(/\s+/g, " ").trim(); }
  }

  function afterFrame() {
    var data = frameData();
    if (!data) { return; }
    restoreFocus();
    announce();
    // The address bar is always a link to what is on screen (in presenter mode, present.js
    // writes the room's own, as the room's socket tells it).
    if (!LIVE && !PRESENT) { window.history.replaceState(null, "", data.page_url); }
    var share = $("#share-link");
    if (share) { share.value = absolute(data.page_url); }
    var present = $("#btn-present");
    if (present) { present.setAttribute("href", presentHref(data)); }
    drawTimeline();
    if (playing) { playTimer = window.setTimeout(playTick, PLAY_DELAY_MS); }
  }

  // --- play / pause --------------------------------------------------------------------------

  function setPlaying(on) {
    playing = on;
    window.clearTimeout(playTimer);
    renderPlay();
  }

  // The play button lives in the swapped player bar, so its label is re-applied after swaps.
  function renderPlay() {
    var on = playing;
    var btn = $("#btn-play");
    if (btn) {
      btn.textContent = on ? "❚❚ Pause" : "▷ Play";
      btn.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  function playTick() {
    var next = $("#btn-forward");
    if (!playing || !next || next.disabled) { setPlaying(false); return; }
    activate(next);
  }

  function togglePlay() {
    if (playing) { setPlaying(false); return; }
    var data = frameData();
    if (!data || !data.total) { say("Nothing to play: the schedule is empty."); return; }
    setPlaying(true);
    if (data.at >= data.total) { goto(0); } else { playTick(); }
  }

  // --- copy link / diagram -------------------------------------------------------------------

  var COPY_FAILED = "Copy failed: select the text below and copy it yourself.";

  function copyLink() {
    var data = frameData();
    if (!data) { return; }
    var link = absolute(data.page_url);
    var share = $("#share-link");
    if (share) { share.value = link; }
    copyText(link, "✓ Link copied", COPY_FAILED);
  }

  // A short /z/ link from the server's store; the long link stays in the box until it comes.
  function shortLink() {
    var data = frameData();
    if (!data) { return; }
    fetch(data.links_url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ link: data.page_url })
    }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) { throw new Error(body.detail || res.statusText); }
        return body;
      });
    }).then(function (body) {
      // Already absolute: the server made it on its public URL (or the address it was reached by).
      var link = /^https?:/.test(body.short_url) ? body.short_url : absolute(body.short_url);
      var share = $("#share-link");
      if (share) { share.value = link; }
      copyText(link, "✓ Short link copied", COPY_FAILED);
    }).catch(function (err) { say("✖ No short link: " + err.message); });
  }

  function copyDiagram() {
    var data = frameData();
    if (!data) { return; }
    fetch(data.diagram_url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data.diagram_request)
    }).then(function (res) {
      return res.text().then(function (text) {
        if (!res.ok) { throw new Error(text); }
        return text;
      });
    }).then(function (text) {
      $("#diagram-text").textContent = text;
      $("#diagram-box").open = true;
      copyText(text, "✓ Diagram copied", COPY_FAILED);
    }).catch(function (err) { say("Diagram failed: " + err.message); });
  }

  function toggleHelp() {
    var dialog = $("#help");
    if (!dialog) { return; }
    if (dialog.open) { dialog.close(); } else { dialog.showModal(); }
  }

  // --- keyboard ------------------------------------------------------------------------------

  // Follow an htmx link without a synthetic click: a link swapped in moments ago is only
  // wired up by htmx when the swap settles, and clicking it before then would navigate.
  function activate(el) {
    var url = el.getAttribute("hx-get");
    if (!url || !window.htmx) { el.click(); return; }
    var target = el.getAttribute("hx-target") || "#frame";
    window.htmx.ajax("GET", url, { source: el, target: target, swap: "innerHTML" });
  }

  function clickIf(sel) {
    var el = $(sel);
    if (el && !el.disabled) { activate(el); return true; }
    return false;
  }

  // The next kernel variant along the toggle (wrapping round): the A/B switch by keyboard.
  function nextKernel() {
    var segs = Array.prototype.slice.call(document.querySelectorAll(".kernel [data-variant]"));
    var current = segs.findIndex(function (el) { return el.classList.contains("active"); });
    if (segs.length < 2) { say("This scenario has one kernel only."); return; }
    activate(segs[(current + 1) % segs.length]);
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" ||
      (target && target.isContentEditable);
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) { return; }
    if (ev.key === " " || ev.key === "Enter") {
      var control = ev.target && ev.target.closest ? ev.target.closest("a[role=button], button, summary") : null;
      if (control) {
        // ARIA buttons take Space (links only take Enter natively): activate, do not Play.
        if (ev.key === " " && control.tagName === "A") {
          ev.preventDefault();
          if (!LIVE) { refocus = focusKey(control); activate(control); }
        } else if (!LIVE) {
          refocus = focusKey(control);
        }
        return; // a real <button> or <summary> handles Space and Enter itself
      }
    }
    if ($("#help") && $("#help").open && ev.key !== "?") { return; }
    var key = ev.key;
    var handled = true;
    if (LIVE) {
      if (key === "?") { toggleHelp(); ev.preventDefault(); }
      return;
    }
    if (key === "ArrowLeft") { setPlaying(false); clickIf("#btn-back"); }
    else if (key === "ArrowRight") { setPlaying(false); clickIf("#btn-forward"); }
    else if (key === "Home") { clickIf("#btn-first"); }
    else if (key === "End") { clickIf("#btn-last"); }
    else if (key === " ") { togglePlay(); }
    else if (key === "f") { clickIf("#btn-find"); }
    else if (key === "e") { clickIf("#btn-explore"); }
    else if (key === "c") { copyLink(); }
    else if (key === "k") { nextKernel(); }
    else if (key === "n") { clickIf("#ab-next"); }
    else if (key === "p" && $("#btn-present")) { window.location.assign($("#btn-present").href); }
    else if (key === "?") { toggleHelp(); }
    else if (/^[1-9]$/.test(key)) {
      setPlaying(false);
      var btn = document.querySelector('.actor .step[data-step-key="' + key + '"]');
      if (btn && !btn.disabled) { activate(btn); } else if (btn) { say("That actor cannot run now."); }
    }
    else { handled = false; }
    if (handled) { ev.preventDefault(); }
  }

  // --- wiring --------------------------------------------------------------------------------

  document.addEventListener("click", function (ev) {
    var acted = ev.target.closest ? ev.target.closest("a, button") : null;
    if (acted && !LIVE) { refocus = focusKey(acted) || refocus; }
    var target = ev.target.closest ? ev.target.closest("button") : null;
    if (!target) { return; }
    if (target.id === "btn-play") { togglePlay(); }
    else if (target.id === "btn-copy-link") { copyLink(); }
    else if (target.id === "btn-short-link") { shortLink(); }
    else if (target.id === "btn-copy-diagram") { copyDiagram(); }
    else if (target.id === "btn-help") { toggleHelp(); }
  });
  document.addEventListener("keydown", onKey);
  document.body.addEventListener("htmx:afterSettle", function (ev) {
    // ev.target is the element that settled; detail.target is the request's main target even
    // for the out-of-band player bar.
    var id = ev.target && ev.target.id;
    if (id === "frame") { afterFrame(); }
    if (id === "player") { renderPlay(); }
    if (id === "outcomes") {
      drawOutcomes();
      // A follower (often a phone) keeps its place; the presenter is taken to the result.
      if (!LIVE) { $("#explore-panel").scrollIntoView({ block: "nearest" }); }
    }
  });
  document.body.addEventListener("htmx:responseError", function (ev) {
    setPlaying(false);
    var xhr = ev.detail.xhr;
    var message = "The server refused that request (" + xhr.status + ").";
    // A busy server (503, or 429 for this browser's share of explorations) says when to retry.
    try { message = JSON.parse(xhr.responseText).detail || message; } catch (e) { /* not JSON */ }
    say("⚠ " + message);
  });
  document.body.addEventListener("htmx:sendError", function () {
    setPlaying(false);
    say("⚠ The server cannot be reached.");
  });
  var initial = frameData();
  if (initial && !LIVE) {
    // Canonical link (variant and digest included) from the first paint on; in presenter
    // mode present.js writes it, keeping the room (read from this very address) in it.
    if (!PRESENT) { window.history.replaceState(null, "", initial.page_url); }
    $("#share-link").value = absolute(initial.page_url);
    $("#btn-present").setAttribute("href", presentHref(initial));
  }
  drawTimeline();
}());
