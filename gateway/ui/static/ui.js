// Enhancements only: every page works without this file.
"use strict";
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button.copy");
  if (!b) return;
  var el = document.getElementById(b.dataset.copy);
  var text = el.value !== undefined ? el.value : el.textContent;
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(function () { b.textContent = "Copied"; });
  } else if (el.select) { el.select(); document.execCommand("copy"); b.textContent = "Copied"; }
});
// Client-side re-sorting of the rows on screen: Alt+click (or Alt+Enter) on a header sorts without a reload.
// A plain click follows the link, which sorts across every page on the server.
document.addEventListener("click", function (ev) {
  var a = ev.target.closest("table.sortable thead th a");
  if (!a || !ev.altKey) return;
  ev.preventDefault();
  var th = a.closest("th"), table = th.closest("table"), idx = Array.prototype.indexOf.call(th.parentNode.children, th);
  var desc = th.getAttribute("aria-sort") !== "descending";
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  rows.sort(function (x, y) {
    var a = x.cells[idx] ? x.cells[idx].textContent.trim() : "", b = y.cells[idx] ? y.cells[idx].textContent.trim() : "";
    if (a === "" || b === "") return (a === "") - (b === "");
    var na = parseFloat(a), nb = parseFloat(b), c = (!isNaN(na) && !isNaN(nb)) ? na - nb : a.localeCompare(b);
    return desc ? -c : c;
  });
  rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
  Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", desc ? "descending" : "ascending");
});
// MLflow's client prints links into MLflow's single-page UI (http://host/#/experiments/1/runs/<id>). The
// fragment survives the redirects that bring the browser here; the server resolves it to mlgate's page.
// The MLflow link page (#mlflow-link) names the project of a prefixed tracking URI and hands over any
// route; other pages hand over MLflow's routes only, in the project of the unprefixed MLflow API.
(function () {
  var landing = document.getElementById("mlflow-link");
  var hash = location.hash;
  var isRoute = landing ? /^#\/./.test(hash) : /^#\/(experiments|models|compare-runs|metric)(\/|\?|$)/.test(hash);
  if (!isRoute) {
    if (landing) location.replace(landing.dataset.home);
    return;
  }
  var project = landing ? landing.dataset.project : "default";
  location.replace("/ui/mlflow-link?project=" + encodeURIComponent(project) +
    "&fragment=" + encodeURIComponent(hash.slice(1)));
})();
