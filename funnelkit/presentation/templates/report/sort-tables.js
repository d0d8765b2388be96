// Click a column header to sort a table; click again to reverse (an arrow ▲/▼ marks the sorted
// column). Cells sort by what they show: numbers written with separators, currency, units or
// percent by value; dates and periods (2024-06-30, 2024-06, 2024-Q2, 2024-H1) in time order; cells
// the page ranks (class fk-o-<n>, e.g. tiers high > medium > low in either language) by rank.
// Missing values ("–") go last and total rows (class fk-total) stay at the bottom either way.
(function () {
  var PERIOD = /^(\d{4})-(Q[1-4]|H[12]|\d{2})(?:-(\d{2}))?/;
  var START = {Q1: "01", Q2: "04", Q3: "07", Q4: "10", H1: "01", H2: "07"};
  var NUMBER = /^[-+]?[\u00a5$\u20ac\u00a3]?[-+]?\d+(?:\.\d+)?/;  // yen, dollar, euro, pound
  function sortKey(cell) {
    var rank = cell ? /(?:^|\s)fk-o-(\d+)(?:\s|$)/.exec(cell.className) : null;
    if (rank) return {kind: 0, value: +rank[1]};
    var text = cell ? cell.innerText.trim() : "";
    if (text === "" || text === "–" || text === "-") return {kind: 2, value: ""};
    var period = PERIOD.exec(text);
    if (period) return {kind: 0, value: period[1] + "-" + (START[period[2]] || period[2]) + "-" + (period[3] || "00") + text};
    var plain = text.replace(/[,\s\u00a0]/g, "").replace(/\u2212/g, "-");
    var number = NUMBER.exec(plain);
    if (number) {
      var sign = number[0].indexOf("-") >= 0 ? -1 : 1;
      return {kind: 0, value: sign * parseFloat(number[0].replace(/[^0-9.]/g, ""))};
    }
    return {kind: 1, value: text};
  }
  function compare(a, b) {
    if (a.kind !== b.kind) return a.kind - b.kind;
    if (typeof a.value === "number" && typeof b.value === "number") return a.value - b.value;
    return String(a.value).localeCompare(String(b.value));
  }
  document.querySelectorAll("table.fk-table").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.from(body.rows);
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        headers.forEach(function (other) {
          other.removeAttribute("aria-sort");
          var old = other.querySelector(".fk-arrow");
          if (old) old.remove();
        });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var arrow = document.createElement("span");
        arrow.className = "fk-arrow";
        arrow.textContent = dir === 1 ? " ▲" : " ▼";
        th.appendChild(arrow);
        var keyed = rows.map(function (row, i) {
          var total = row.cells[0] && /(?:^|\s)fk-total(?:\s|$)/.test(row.cells[0].className);
          return {row: row, i: i, total: total, key: sortKey(row.cells[col])};
        });
        keyed.sort(function (a, b) {
          if (a.total !== b.total) return a.total ? 1 : -1;  // totals at the bottom, either direction
          if ((a.key.kind === 2) !== (b.key.kind === 2)) return a.key.kind === 2 ? 1 : -1;  // missing last
          return compare(a.key, b.key) * dir || a.i - b.i;
        });
        keyed.forEach(function (k) { body.appendChild(k.row); });
      });
    });
  });
})();
