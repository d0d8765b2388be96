// Click a column header to sort a table (numbers by value, text alphabetically); no network.
document.querySelectorAll("table.fk-table").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.title = "sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var key = function (r) {
        var t = (r.cells[col] ? r.cells[col].innerText : "").trim();
        var n = parseFloat(t.replace(/[^0-9.\-]/g, ""));
        return isNaN(n) ? t : n;
      };
      var dir = th.dataset.dir === "asc" ? -1 : 1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (typeof x === typeof y ? (x > y) - (x < y) : String(x).localeCompare(String(y))) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
