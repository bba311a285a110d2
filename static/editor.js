// pagerace scenario editor: line numbers, jumping to a problem's line, YAML-friendly Tab and
// Enter, Ctrl+Enter to explore, copy/share/save, and the outcomes chart. The server checks the
// text (htmx posts it as you type); this file only glues and draws.
import { $, absolute, copyText, drawFigure, readJSON, say } from "./core.js";

(function () {
  var text = document.getElementById("ed-text");
  var gutter = document.getElementById("ed-gutter");
  if (!text || !gutter) { return; }
  var initialText = text.value;
  var escArmed = false; // Esc, then Tab, leaves the textarea instead of indenting
  var shownRows = -1;
  var shownBad = "";

  // --- gutter ---------------------------------------------------------------------------------

  function badLines() {
    var data = $("#check-data");
    return data ? data.getAttribute("data-lines") || "" : "";
  }

  function renderGutter() {
    var rows = text.value.split("\n").length;
    var bad = badLines();
    if (rows === shownRows && bad === shownBad) { return; }
    var marked = {};
    bad.split(",").forEach(function (n) { if (n) { marked[n] = true; } });
    var frag = document.createDocumentFragment();
    for (var i = 1; i <= rows; i++) {
      var span = document.createElement("span");
      span.id = "L" + i;
      span.textContent = String(i);
      if (marked[String(i)]) { span.className = "bad"; }
      frag.appendChild(span);
    }
    gutter.replaceChildren(frag);
    shownRows = rows;
    shownBad = bad;
    gutter.scrollTop = text.scrollTop;
  }

  function lineHeight() {
    return parseFloat(window.getComputedStyle(text).lineHeight) || 20;
  }

  // Put the caret on `line` (at `col`, or select the whole line) and scroll it into view.
  function goToLine(line, col) {
    var lines = text.value.split("\n");
    var n = Math.max(1, Math.min(line, lines.length));
    var start = 0;
    for (var i = 0; i < n - 1; i++) { start += lines[i].length + 1; }
    var end = start + lines[n - 1].length;
    text.focus();
    if (col) {
      var at = Math.min(start + col - 1, end);
      text.setSelectionRange(at, at);
    } else {
      text.setSelectionRange(start, end);
    }
    text.scrollTop = Math.max(0, (n - 1) * lineHeight() - text.clientHeight / 3);
    gutter.scrollTop = text.scrollTop;
    var mark = document.getElementById("L" + n);
    if (mark) {
      mark.classList.remove("flash");
      void mark.offsetWidth; // restart the animation
      mark.classList.add("flash");
    }
  }

  // --- typing -------------------------------------------------------------------------------

  // execCommand keeps the browser's undo history; setRangeText is the fallback.
  function insert(str) {
    var ok = false;
    try { ok = document.execCommand("insertText", false, str); } catch (e) { ok = false; }
    if (!ok) {
      text.setRangeText(str, text.selectionStart, text.selectionEnd, "end");
      text.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }

  function currentLine() {
    var before = text.value.slice(0, text.selectionStart);
    return before.slice(before.lastIndexOf("\n") + 1);
  }

  // YAML indentation after Enter: keep the line's, one level deeper after "key:" (and after
  // "- key:", whose mapping's keys line up after the dash).
  function newlineIndent() {
    var line = currentLine();
    var indent = /^ */.exec(line)[0].length;
    var code = line.replace(/\s+#.*$/, "").trimEnd();
    if (/:$/.test(code)) { indent += /^\s*- /.test(code) ? 4 : 2; }
    return "\n" + " ".repeat(indent);
  }

  function dedent() {
    var start = text.value.lastIndexOf("\n", text.selectionStart - 1) + 1;
    var spaces = /^ {1,2}/.exec(text.value.slice(start));
    if (!spaces) { return; }
    var caret = text.selectionStart;
    text.setSelectionRange(start, start + spaces[0].length);
    insert("");
    var back = Math.max(start, caret - spaces[0].length);
    text.setSelectionRange(back, back);
  }

  function explore() {
    var btn = $("#btn-explore");
    if (btn) { btn.click(); }
  }

  text.addEventListener("keydown", function (ev) {
    var key = ev.key;
    if (key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); explore(); return; }
    if (key === "Escape") { escArmed = true; say("Tab now leaves the text; Shift+Tab goes back."); return; }
    if (key === "Tab" && !escArmed && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      ev.preventDefault();
      if (ev.shiftKey) { dedent(); } else { insert("  "); }
      return;
    }
    if (key === "Enter" && !ev.shiftKey && !ev.altKey && !ev.isComposing) {
      ev.preventDefault();
      insert(newlineIndent());
    }
    if (key !== "Shift") { escArmed = false; }
  });
  // --- completion (issue 15 item 7) ------------------------------------------------------------
  // What may go on the line being typed, from the engine's JSON Schema of the language: op
  // names after "- " in setup or ops, an op's parameters inside its "{...}", a parameter's
  // allowed words after "key: ", the top-level keys at the left margin. Each is a button:
  // clicking it (or Alt+1..9) puts it in place of the word being typed.
  var bar = document.getElementById("ed-complete");
  var schema = null;
  var offered = [];

  if (bar) {
    fetch(bar.getAttribute("data-schema-url"), { headers: { accept: "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (got) { schema = got; suggest(); })
      .catch(function () { schema = null; });
  }

  function opsOf(section) {
    if (!schema) { return {}; }
    var top = schema.properties;
    var ops = section === "setup" ? top.setup : top.actors.items.properties.ops;
    return ops.items.properties;
  }

  function paramsOf(op) {
    var spec = op && op.anyOf ? op.anyOf[0] : op;
    return spec && spec.properties ? spec : null;
  }

  // The section the caret's line belongs to: the nearest less-indented "key:" above it.
  function sectionOf(lines, row, indent) {
    for (var i = row - 1; i >= 0; i--) {
      var m = /^( *)(?:- )?([a-z_]+):\s*(#.*)?$/.exec(lines[i]);
      if (m && m[1].length < indent) { return m[2]; }
    }
    return "";
  }

  function contextAt() {
    var before = text.value.slice(0, text.selectionStart);
    var lines = text.value.split("\n");
    var row = before.split("\n").length - 1;
    var line = before.slice(before.lastIndexOf("\n") + 1);
    var indent = /^ */.exec(line)[0].length;
    var m = /^ *- *([a-z_]*)$/.exec(line);
    if (m) {
      var section = sectionOf(lines, row, indent + 1);
      if (section === "ops" || section === "setup") {
        var ops = opsOf(section);
        return { what: "operation", word: m[1], items: Object.keys(ops).map(function (name) {
          var params = paramsOf(ops[name]);
          var required = params && params.required ? params.required : [];
          return { label: name, text: name + ": {" + required.map(function (p) { return p + ": "; }).join(", ") + "}" };
        }) };
      }
    }
    m = /^ *- *([a-z_]+): *\{([^}]*)$/.exec(line);
    if (m) {
      var sectionOfOp = sectionOf(lines, row, indent + 1);
      var params = paramsOf(opsOf(sectionOfOp === "setup" ? "setup" : "ops")[m[1]]);
      if (!params) { return null; }
      var inside = m[2];
      var value = /([a-z_]+): *([A-Za-z0-9_#.-]*)$/.exec(inside);
      if (value) {
        var spec = params.properties[value[1]] || {};
        var words = spec.enum || (spec.type === "boolean" ? ["true", "false"] : null);
        if (!words) { return null; }
        return { what: value[1], word: value[2], items: words.map(function (w) { return { label: String(w), text: String(w) }; }) };
      }
      var word = /([a-z_]*)$/.exec(inside)[1];
      var present = inside.split(",").map(function (part) { return part.split(":")[0].trim(); });
      return { what: m[1] + " parameter", word: word, items: Object.keys(params.properties)
        .filter(function (p) { return present.indexOf(p) < 0 || p === word; })
        .map(function (p) { return { label: p, text: p + ": " }; }) };
    }
    m = /^([a-z_]*)$/.exec(line);
    if (m && schema) {
      return { what: "top-level key", word: m[1], items: Object.keys(schema.properties).map(function (k) {
        return { label: k, text: k + ":" };
      }) };
    }
    return null;
  }

  function suggest() {
    if (!bar) { return; }
    var ctx = document.activeElement === text || document.activeElement === bar || bar.contains(document.activeElement) ? contextAt() : null;
    var items = ctx ? ctx.items.filter(function (it) { return it.label.indexOf(ctx.word) === 0 && it.label !== ctx.word; }) : [];
    offered = items.slice(0, 9).map(function (it) { return { word: ctx.word, text: it.text, label: it.label }; });
    if (!offered.length) { bar.hidden = true; bar.replaceChildren(); return; }
    var frag = document.createDocumentFragment();
    var what = document.createElement("span");
    what.className = "ed-complete-what";
    what.textContent = ctx.what + ":";
    frag.appendChild(what);
    offered.forEach(function (it, i) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "btn";
      b.setAttribute("data-complete", String(i));
      b.setAttribute("aria-keyshortcuts", "Alt+" + (i + 1));
      b.textContent = it.label;
      frag.appendChild(b);
    });
    bar.replaceChildren(frag);
    bar.hidden = false;
  }

  function complete(i) {
    var it = offered[i];
    if (!it) { return; }
    text.focus();
    var at = text.selectionStart;
    text.setSelectionRange(at - it.word.length, at);
    insert(it.text);
    // Inside "{a: , b: }": the caret goes to the first value to fill in.
    var gap = it.text.indexOf(": ", it.text.indexOf("{"));
    if (it.text.slice(-1) === "}" && it.text.slice(-2) !== "{}" && gap > 0) {
      var start = text.selectionStart - it.text.length + gap + 2;
      text.setSelectionRange(start, start);
    }
    suggest();
  }

  if (bar) {
    bar.addEventListener("mousedown", function (ev) { ev.preventDefault(); }); // keep the caret
    bar.addEventListener("click", function (ev) {
      var b = ev.target.closest ? ev.target.closest("button[data-complete]") : null;
      if (b) { complete(Number(b.getAttribute("data-complete"))); }
    });
    text.addEventListener("keydown", function (ev) {
      if (ev.altKey && !ev.ctrlKey && !ev.metaKey && /^[1-9]$/.test(ev.key) && offered[Number(ev.key) - 1]) {
        ev.preventDefault();
        complete(Number(ev.key) - 1);
      }
    });
    ["input", "click", "keyup", "focus"].forEach(function (type) { text.addEventListener(type, suggest); });
  }

  // --- highlighting (issue 15 item 7) -----------------------------------------------------------
  // The YAML's keys, strings, numbers and booleans, comments and punctuation, drawn in the
  // <pre> under the textarea (a token at a time, as text nodes: nothing is parsed as HTML).
  var field = document.getElementById("ed-field");
  var hl = document.getElementById("ed-hl");
  var TOKEN = /((?<=^|\s)#.*$)|((?<=^|[\s\[{,:])(?:"(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?))|(^\s*-\s+|^\s*-$)|([A-Za-z_][A-Za-z0-9_.-]*)(?=\s*:(?:\s|$))|(\b(?:true|false|null|yes|no)\b|(?<![\w#.-])-?\d+(?:\.\d+)?(?![\w.]))|([{}\[\],:>|])/g;
  var CLASSES = ["y-com", "y-str", "y-pun", "y-key", "y-num", "y-pun"];

  function paintLine(line, frag) {
    var at = 0;
    var m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(line)) !== null) {
      if (m[0] === "") { TOKEN.lastIndex++; continue; }
      if (m.index > at) { frag.appendChild(document.createTextNode(line.slice(at, m.index))); }
      var group = 1;
      while (group < m.length && m[group] === undefined) { group++; }
      var span = document.createElement("span");
      span.className = CLASSES[group - 1] || "";
      span.textContent = m[0];
      frag.appendChild(span);
      at = m.index + m[0].length;
      if (group === 1) { break; } // a comment runs to the end of the line
    }
    if (at < line.length) { frag.appendChild(document.createTextNode(line.slice(at))); }
  }

  function paint() {
    if (!field || !hl) { return; }
    var frag = document.createDocumentFragment();
    var lines = text.value.split("\n");
    var block = -1; // the indent of the key whose block scalar (> or |) the lines continue
    lines.forEach(function (line) {
      var indent = /^ */.exec(line)[0].length;
      if (block >= 0 && (line.trim() === "" || indent > block)) {
        frag.appendChild(document.createTextNode(line + "\n")); // prose: nothing to colour
        return;
      }
      block = /:\s*[>|][-+]?\s*(#.*)?$/.test(line) ? indent : -1;
      paintLine(line, frag);
      frag.appendChild(document.createTextNode("\n"));
    });
    frag.appendChild(document.createTextNode("\n")); // room for the textarea's last line
    hl.replaceChildren(frag);
    syncScroll();
    field.classList.add("painted");
  }

  function syncScroll() {
    if (!hl) { return; }
    hl.scrollTop = text.scrollTop;
    hl.scrollLeft = text.scrollLeft;
  }

  paint();
  text.addEventListener("input", paint);
  text.addEventListener("scroll", syncScroll);

  text.addEventListener("input", renderGutter);
  text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
  text.addEventListener("blur", function () { escArmed = false; });

  // Ctrl+Enter explores from anywhere on the page; other keys are left to the browser.
  document.addEventListener("keydown", function (ev) {
    if (ev.target === text) { return; }
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); explore(); }
  });

  // --- links, copy, save ----------------------------------------------------------------------

  function absoluteLinks() {
    document.querySelectorAll("#share input[data-path]").forEach(function (input) {
      input.value = absolute(input.getAttribute("data-path"));
    });
  }

  function copyFrom(id) {
    var input = document.getElementById(id);
    if (!input || input.tagName !== "INPUT") { return; }
    input.select();
    var what = id === "share-editor" ? "Editor link" : "Dashboard link";
    copyText(input.value, "✓ " + what + " copied", "Copy failed: select the link and copy it yourself.");
  }

  function download(name) {
    var blob = new Blob([text.value], { type: "application/yaml" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name || "scenario.yaml";
    document.body.appendChild(a);
    a.click();
    a.remove();
    window.setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
    say("✓ Saved " + a.download);
  }

  document.addEventListener("click", function (ev) {
    var goto = ev.target.closest ? ev.target.closest("a.goto") : null;
    if (goto) {
      ev.preventDefault();
      goToLine(Number(goto.getAttribute("data-line")), Number(goto.getAttribute("data-col")) || 0);
      return;
    }
    var btn = ev.target.closest ? ev.target.closest("button") : null;
    if (!btn) { return; }
    if (btn.hasAttribute("data-copy")) { copyFrom(btn.getAttribute("data-copy")); }
    else if (btn.id === "btn-download") { download(btn.getAttribute("data-name")); }
  });

  // Switching the kernel re-explores when outcomes are on screen: the A/B of a fix is one click.
  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.id === "ed-variant" && $(".ed-outcomes")) { explore(); }
  });

  var start = document.getElementById("start-form");
  if (start) {
    start.addEventListener("submit", function (ev) {
      if (text.value !== initialText && !window.confirm("Replace your text? It is kept only in this page's link.")) {
        ev.preventDefault();
      }
    });
  }

  // --- after the server answers -------------------------------------------------------------

  function afterCheck() {
    var data = $("#check-data");
    if (!data) { return; }
    renderGutter();
    var size = $("#ed-size");
    if (size) { size.textContent = data.getAttribute("data-size"); }
    // The address bar is always a link to what is on screen (when it fits in a link).
    var link = data.getAttribute("data-editor");
    if (link) { window.history.replaceState(null, "", link); }
    absoluteLinks();
    markStale();
  }

  function markStale() {
    var result = $(".ed-outcomes");
    var status = $("#check-status");
    if (!result || !status) { return; }
    var stale = status.getAttribute("data-key") !== result.getAttribute("data-key");
    result.classList.toggle("stale", stale);
    var note = result.querySelector(".stale-note");
    if (note) { note.hidden = !stale; }
  }

  var plotlyLoading = false;

  // plotly.js is most of a page's weight and only the outcomes need it: load it on first use.
  function withPlotly(draw) {
    if (window.Plotly) { draw(); return; }
    var main = $("#editor");
    if (plotlyLoading || !main) { return; }
    plotlyLoading = true;
    var script = document.createElement("script");
    script.src = main.getAttribute("data-plotly");
    script.onload = function () { plotlyLoading = false; draw(); };
    script.onerror = function () { plotlyLoading = false; say("⚠ The chart library did not load; the table has every outcome."); };
    document.head.appendChild(script);
  }

  function drawOutcomes() {
    if ($("#ed-outcomes-chart")) { withPlotly(drawChart); }
  }

  function drawChart() {
    drawFigure($("#ed-outcomes-chart"), readJSON("ed-outcomes-data"), null, function (point) {
      var link = document.querySelector('.load-example[data-outcome="' + point.customdata + '"]');
      if (link) { window.location.assign(link.href); }
    });
  }

  function showError(target, message) {
    var el = document.getElementById(target);
    if (!el) { say(message); return; }
    var p = document.createElement("p");
    p.className = "notice warn";
    p.setAttribute("role", "alert");
    p.textContent = "⚠ " + message;
    el.replaceChildren(p);
  }

  document.body.addEventListener("htmx:beforeSwap", function (ev) {
    // A too-big text (413) or an invalid one (422) still gets its explanation swapped in.
    var xhr = ev.detail.xhr;
    var html = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/html") === 0;
    if ((xhr.status === 413 || xhr.status === 422) && html) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });
  document.body.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail.xhr;
    var target = ev.detail.target && ev.detail.target.id;
    var message = "The server refused that request (" + xhr.status + ").";
    try { message = JSON.parse(xhr.responseText).detail || message; } catch (e) { /* not JSON */ }
    if (xhr.status === 413) { message = "The text is too large to send: " + message + ". Shorten it."; }
    showError(target === "explore-result" ? "explore-result" : "check", message);
  });
  document.body.addEventListener("htmx:sendError", function () {
    say("⚠ The server cannot be reached.");
  });
  document.body.addEventListener("htmx:afterSettle", function (ev) {
    var id = ev.target && ev.target.id;
    if (id === "check") { afterCheck(); }
    if (id === "explore-result") {
      drawOutcomes();
      markStale();
      var result = $("#explore-result");
      if (result) { result.scrollIntoView({ block: "nearest" }); }
    }
  });

  absoluteLinks();
  renderGutter();
  drawOutcomes();
}());
