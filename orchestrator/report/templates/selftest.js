// Under `report.html#selftest` (what the browser test opens) the page records, for every figure,
// whether it decoded and whether its pixels vary, as JSON in a PRE element with the id "selftest"
// appended to the body. Inert otherwise.
window.addEventListener("load", function () {
  if (location.hash !== "#selftest") return;
  var out = [];
  document.querySelectorAll("img").forEach(function (img) {
    var rec = {name: img.dataset.name || img.alt, complete: img.complete,
               width: img.naturalWidth, height: img.naturalHeight, distinct: 0, dark: 0};
    try {
      var c = document.createElement("canvas");
      c.width = Math.min(img.naturalWidth, 400);
      c.height = Math.max(1, Math.round(c.width * img.naturalHeight / Math.max(1, img.naturalWidth)));
      var g = c.getContext("2d");
      g.drawImage(img, 0, 0, c.width, c.height);
      var d = g.getImageData(0, 0, c.width, c.height).data, seen = {};
      for (var i = 0; i < d.length; i += 4) {
        var v = (d[i] >> 4) + "," + (d[i + 1] >> 4) + "," + (d[i + 2] >> 4);
        if (!(v in seen)) { seen[v] = 1; rec.distinct++; }
        if (d[i] + d[i + 1] + d[i + 2] < 600) rec.dark++;
      }
      rec.pixels = d.length / 4;
    } catch (e) { rec.error = String(e); }
    out.push(rec);
  });
  var pre = document.createElement("pre");
  pre.id = "selftest";
  pre.textContent = JSON.stringify({images: out, tables: document.querySelectorAll("table").length});
  document.body.appendChild(pre);
});
