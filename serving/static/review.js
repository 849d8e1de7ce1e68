// govrisk review pages: keyboard shortcuts. v = violating, n = not violating, e = escalate,
// j / k = next / previous (rows on list pages; claim next / back to the queue on item pages),
// c = claim next, Enter = open the selected row, ? = help. Written for this project; no dependencies.
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-href]"));
  }

  var selected = -1;

  function select(index) {
    var all = rows();
    if (!all.length) { return false; }
    selected = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    all[selected].scrollIntoView({ block: "nearest" });
    return true;
  }

  function click(selector) {
    var el = document.querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a, button, form")) {
      window.location.href = row.getAttribute("data-href");
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var handled = false;
    switch (event.key) {
      case "v": handled = click("#verdict-violating"); break;
      case "n": handled = click("#verdict-not-violating"); break;
      case "e":
        var title = document.getElementById("escalate-title");
        if (title) { title.scrollIntoView({ block: "center" }); title.focus(); handled = true; }
        break;
      case "c": handled = click("#claim-next"); break;
      case "j":
        handled = rows().length ? select(selected + 1) : click("#claim-next");
        break;
      case "k":
        handled = rows().length ? select(selected - 1) : click("[data-key='k']");
        break;
      case "Enter":
        var all = rows();
        if (selected >= 0 && all[selected]) {
          window.location.href = all[selected].getAttribute("data-href");
          handled = true;
        }
        break;
      case "?":
        var help = document.getElementById("help");
        if (help) { help.hidden = !help.hidden; handled = true; }
        break;
    }
    if (handled) { event.preventDefault(); }
  });
})();

// Times are written in UTC by the server; add the reader's local time beside each one.
(function () {
  "use strict";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  Array.prototype.forEach.call(document.querySelectorAll("time[datetime]"), function (el) {
    var at = new Date(el.getAttribute("datetime"));
    if (isNaN(at.getTime()) || el.querySelector(".local")) { return; }
    var local = document.createElement("span");
    local.className = "local";
    var sameDay = at.toISOString().slice(0, 10) === [at.getFullYear(), pad(at.getMonth() + 1), pad(at.getDate())].join("-");
    local.textContent = " (" + (sameDay ? "" : pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " ") +
      pad(at.getHours()) + ":" + pad(at.getMinutes()) + " local)";
    el.appendChild(local);
  });
})();
